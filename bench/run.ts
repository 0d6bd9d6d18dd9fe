// `npm run bench`: starts each peer server on loopback, one at a time and in
// rotating order over several rounds, drives it with h2load, wrk and a raw
// HTTP/2 bidi client, and reports medians and ratios (see bench/README.md).
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { runBidi } from "./bidi-client.js";
import { checkRequest } from "./check.js";
import { runH2load, runWrk, writeBodyFile, type LoadResult } from "./load-generators.js";
import { startOtlpSink } from "./otlp-sink.js";
import { NODE, PYTHON, ROOT, peers, type Peer, type PeerContext } from "./peer-list.js";
import { renderChart } from "./chart.js";
import { aggregate, renderReport, type Measurement, type Outcome, type Results } from "./report.js";
import { startServerProcess, freePort, type ServerProcess } from "./server-process.js";
import { ensureTools, type ToolName } from "./tools.js";
import { workloads, type Workload } from "./workloads.js";

const usage = `Usage: npm run bench -- [options]

  --quick            1 round, 2 s runs, 20,000 bidi messages (a smoke run)
  --rounds N         rounds over all peers (default 3; 1 with --quick)
  --seconds S        length of each measured run (default 5; 2 with --quick)
  --only IDS         workloads to run, comma-separated: ${workloads.map((w) => w.id).join(", ")}
  --peers IDS        peers to run, comma-separated: ${peers.map((p) => p.id).join(", ")}
  --out DIR          where to write latest.json, latest.md, latest.svg (default bench/results;
                     bench/results/quick with --quick, so a smoke run never replaces a full one)
  --cpu-prof         run the Node peers with --cpu-prof (profiles in DIR/profiles;
                     figures measured so are not comparable)
  --help             show this help`;

interface Settings {
  rounds: number;
  seconds: number;
}

function parseOptions(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      seconds: { type: "string" },
      only: { type: "string", multiple: true },
      peers: { type: "string", multiple: true },
      out: { type: "string" },
      "cpu-prof": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const settings: Settings = values.quick
    ? { rounds: 1, seconds: 2 }
    : { rounds: 3, seconds: 5 };
  if (values.rounds !== undefined) settings.rounds = positiveInteger("--rounds", values.rounds);
  if (values.seconds !== undefined) settings.seconds = positiveInteger("--seconds", values.seconds);
  const pick = <T extends { id: string }>(flag: string, all: T[], ids: string[] | undefined): T[] => {
    if (ids === undefined) return all;
    const wanted = ids.flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);
    const unknown = wanted.filter((id) => !all.some((x) => x.id === id));
    if (unknown.length > 0) fail(`${flag}: unknown ${unknown.join(", ")}; choose from ${all.map((x) => x.id).join(", ")}`);
    return all.filter((x) => wanted.includes(x.id));
  };
  return {
    settings,
    quick: values.quick,
    cpuProf: values["cpu-prof"],
    outDir: resolve(values.out ?? join(ROOT, "bench", "results", ...(values.quick ? ["quick"] : []))),
    workloads: pick("--only", workloads, values.only),
    peers: pick("--peers", peers, values.peers),
  };
}

function positiveInteger(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) fail(`${flag} must be a positive integer, got ${JSON.stringify(text)}`);
  return n;
}

function fail(message: string): never {
  console.error(`bench: ${message}`);
  process.exit(2);
}

const supports = (peer: Peer, workload: Workload) =>
  workload.needs.every((f) => peer.serves.includes(f)) && (peer.workloads?.includes(workload.id) ?? true);

/** Generates the Python stubs for peers/python/server.py, as test/support/python.ts does for the tests. */
function generatePythonStubs(dir: string): string {
  const stubs = join(dir, "python-stubs");
  mkdirSync(stubs);
  // person.proto imports buf/validate/validate.proto, which imports protobuf's own protos: Debian's protoc
  // has no copy of those, buf's image holds them all.
  const image = join(dir, "proto.binpb");
  execFileSync(join(ROOT, "node_modules", ".bin", "buf"), ["build", "proto", "-o", image], { cwd: ROOT, stdio: "inherit" });
  execFileSync(
    "protoc",
    [
      `--descriptor_set_in=${image}`,
      `--python_out=${stubs}`,
      `--grpc_python_out=${stubs}`,
      "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
      "person.proto",
      "route_guide.proto",
      "buf/validate/validate.proto",
    ],
    { cwd: ROOT, stdio: "inherit" },
  );
  return stubs;
}

async function measure(
  server: ServerProcess,
  baseUrl: string,
  workload: Workload,
  settings: Settings,
  files: { dir: string; body: string | undefined },
): Promise<Measurement> {
  const second = 1000;
  if (workload.tool !== "bidi") {
    const problem = await checkRequest(baseUrl, workload.request, workload.tool === "wrk" ? "1.1" : "2");
    if (problem !== undefined) throw new Error(`the workload's request got a wrong answer: ${problem}`);
  }
  server.resetPeakRss();
  let load: LoadResult;
  let clientCores: number | undefined;
  let cpuBefore: number;
  // Long enough for the JIT and the heap to settle on every peer, a fixed count of requests would not be.
  const warmupSeconds = Math.max(1, Math.round(settings.seconds / 2));
  switch (workload.tool) {
    case "h2load": {
      const log = join(files.dir, "h2load.log");
      const h2loadFiles = { body: files.body, log };
      const warm = await runH2load(workload, baseUrl, { seconds: warmupSeconds }, h2loadFiles, (warmupSeconds + 30) * second);
      // Size the measured run from the warm-up's rate so that it lasts about `seconds` on any server.
      const requests = Math.max(1_000, Math.min(2_000_000, Math.round(warm.rate * settings.seconds)));
      cpuBefore = server.cpuSeconds();
      load = await runH2load(workload, baseUrl, { requests }, h2loadFiles, Math.max(30, 5 * settings.seconds) * second);
      break;
    }
    case "wrk": {
      await runWrk(workload, baseUrl, warmupSeconds, (warmupSeconds + 30) * second);
      cpuBefore = server.cpuSeconds();
      load = await runWrk(workload, baseUrl, settings.seconds, (settings.seconds + 30) * second);
      break;
    }
    case "bidi": {
      await runBidi(baseUrl, warmupSeconds, (warmupSeconds + 60) * second);
      cpuBefore = server.cpuSeconds();
      const bidi = await runBidi(baseUrl, settings.seconds, (settings.seconds + 60) * second);
      load = { ok: bidi.messages, failed: 0, seconds: bidi.seconds, rate: bidi.rate, p50Ms: undefined, p99Ms: undefined };
      clientCores = bidi.clientCores;
      break;
    }
  }
  const cpu = server.cpuSeconds() - cpuBefore;
  // A server that fails requests under load has no throughput to report; a stray failure is only noted.
  if (load.ok === 0 || load.failed > 0.01 * (load.ok + load.failed)) {
    throw new Error(`${load.failed} of ${load.ok + load.failed} requests failed (see the peer's log)`);
  }
  return {
    rate: load.rate,
    p50Ms: load.p50Ms,
    p99Ms: load.p99Ms,
    cpuUs: (cpu / load.ok) * 1e6,
    serverCores: cpu / load.seconds,
    peakRssMb: server.peakRssBytes() / 2 ** 20,
    ok: load.ok,
    failed: load.failed,
    seconds: load.seconds,
    clientCores,
  };
}

function toolVersion(file: string, args: string[]): string {
  try {
    return execFileSync(file, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0]!.trim();
  } catch (err) {
    // wrk -v prints its version and exits 1.
    return String((err as { stdout?: string }).stdout ?? "").split("\n")[0]!.trim() || "unknown";
  }
}

function fmt(m: Measurement, workload: Workload): string {
  const unit = workload.tool === "bidi" ? "msg" : "req";
  const latency = m.p99Ms === undefined ? "" : `  p50 ${m.p50Ms!.toFixed(2)} ms  p99 ${m.p99Ms.toFixed(2)} ms`;
  const failed = m.failed > 0 ? `  (${m.failed} failed)` : "";
  return `${Math.round(m.rate).toLocaleString("en")} ${unit}/s${latency}  CPU ${m.cpuUs.toFixed(1)} µs/${unit}  RSS ${m.peakRssMb.toFixed(0)} MB${failed}`;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  const { settings } = options;
  const tools = new Set<ToolName>();
  for (const w of options.workloads) if (w.tool === "h2load" || w.tool === "wrk") tools.add(w.tool);
  ensureTools([...tools]);

  const tmp = mkdtempSync(join(os.tmpdir(), "routeguide-bench-"));
  let selectedPeers = options.peers;
  let pythonStubs = "";
  if (selectedPeers.some((p) => p.python)) {
    try {
      ensureTools(["python3-grpcio", "protoc", "grpc_python_plugin"]);
      pythonStubs = generatePythonStubs(tmp);
    } catch (err) {
      console.warn(`bench: skipping the Python peer: ${(err as Error).message}`);
      selectedPeers = selectedPeers.filter((p) => !p.python);
    }
  }
  const { outDir } = options;
  const profileDir = join(outDir, "profiles");
  if (options.cpuProf) {
    mkdirSync(profileDir, { recursive: true });
    console.warn(`bench: --cpu-prof writes profiles to ${profileDir}; these figures are not comparable`);
  }
  const bodies = new Map<string, string | undefined>();
  for (const w of options.workloads) if (w.tool !== "bidi") bodies.set(w.id, await writeBodyFile(tmp, w.id, w.request));

  // A peer left running would hold its port and CPU after an interrupted run.
  let running: ServerProcess | undefined;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void (running?.stop() ?? Promise.resolve()).then(() => process.exit(130)));
  }
  const sink = await startOtlpSink();
  const commands = new Map<string, string>();
  const results: Results = {};
  for (const w of options.workloads) results[w.id] = {};
  const startedAt = new Date();
  const loadBefore = os.loadavg();
  console.log(
    `routeguide bench: ${settings.rounds} round(s), ${settings.seconds} s runs, peers ${selectedPeers.map((p) => p.id).join(", ")}; logs in ${tmp}`,
  );

  for (let round = 0; round < settings.rounds; round++) {
    // Rotate the order each round so that no peer always runs first or last.
    const order = selectedPeers.map((_, i) => selectedPeers[(i + round) % selectedPeers.length]!);
    for (const peer of order) {
      const mine = options.workloads.filter((w) => supports(peer, w));
      if (mine.length === 0) continue;
      const record = (workload: Workload, outcome: Outcome) => (results[workload.id]![peer.id] ??= []).push(outcome);
      const ctx: PeerContext = {
        http1Port: await freePort(),
        pythonStubs,
        nodeFlags: options.cpuProf ? ["--cpu-prof", "--cpu-prof-dir", join(profileDir, peer.id)] : [],
        otlpEndpoint: sink.endpoint,
      };
      const command = peer.command(ctx);
      commands.set(peer.id, [command.file, ...command.args].join(" "));
      let server: ServerProcess;
      try {
        server = await startServerProcess(command, ROOT, join(tmp, `${peer.id}-round${round + 1}.log`));
        running = server;
      } catch (err) {
        const error = `${peer.id} did not start: ${(err as Error).message}`;
        console.error(`[round ${round + 1}] ${error}`);
        for (const w of mine) record(w, { error });
        continue;
      }
      try {
        for (const workload of mine) {
          const port = workload.tool === "wrk" && peer.http1Port === "separate" ? ctx.http1Port : server.port;
          const baseUrl = `http://127.0.0.1:${port}`;
          const prefix = `[round ${round + 1}/${settings.rounds}] ${peer.id.padEnd(16)} ${workload.id.padEnd(15)}`;
          try {
            const m = await measure(server, baseUrl, workload, settings, { dir: tmp, body: bodies.get(workload.id) });
            record(workload, m);
            console.log(`${prefix} ${fmt(m, workload)}`);
          } catch (err) {
            record(workload, { error: (err as Error).message });
            console.error(`${prefix} FAILED: ${(err as Error).message}`);
          }
        }
      } finally {
        await server.stop();
        running = undefined;
      }
    }
  }

  const report = {
    meta: {
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      quick: options.quick,
      cpuProf: options.cpuProf,
      settings,
      machine: {
        cpu: os.cpus()[0]?.model ?? "unknown",
        cores: os.availableParallelism(),
        memoryGiB: Math.round(os.totalmem() / 2 ** 30),
        kernel: `${os.type()} ${os.release()}`,
        loadAverageBefore: loadBefore.map((x) => Number(x.toFixed(2))),
        loadAverageAfter: os.loadavg().map((x) => Number(x.toFixed(2))),
      },
      versions: {
        node: toolVersion(NODE, ["--version"]),
        h2load: toolVersion("h2load", ["--version"]),
        wrk: toolVersion("wrk", ["-v"]).replace(/ \[.*$/, ""),
        python: selectedPeers.some((p) => p.python)
          ? toolVersion(PYTHON, ["-c", "import grpc, sys; print(f'Python {sys.version.split()[0]}, grpcio {grpc.__version__}')"])
          : undefined,
      },
    },
    peers: selectedPeers.map((p) => ({ id: p.id, label: p.label, command: commands.get(p.id) })),
    workloads: options.workloads.map(({ id, title, tool }) => ({ id, title, tool })),
    results: aggregate(results),
  };
  const { terminal, markdown, goals } = renderReport(report.meta, selectedPeers, options.workloads, report.results);
  console.log(terminal);
  if (sink.exports > 0) console.log(`OTLP sink: ${sink.exports} exports, ${(sink.bytes / 2 ** 20).toFixed(1)} MiB of spans`);
  await sink.close();

  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "latest.json"), JSON.stringify({ ...report, goals }, null, 2) + "\n");
  writeFileSync(join(outDir, "latest.md"), markdown);
  writeFileSync(join(outDir, "latest.svg"), renderChart(selectedPeers, options.workloads, report.results, report.meta));
  console.log(`wrote ${join(outDir, "latest.{json,md,svg}")}`);
  const failures = Object.values(results).flatMap((byPeer) => Object.values(byPeer).flat()).filter((o) => "error" in o);
  if (failures.length > 0) {
    console.error(`bench: ${failures.length} measurement(s) failed (marked "!" above); peer logs are in ${tmp}`);
    process.exitCode = 1;
  }
}

await main();
