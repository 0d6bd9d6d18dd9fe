// Drives h2load (HTTP/2) and wrk (HTTP/1.1) and reads their results.
import { execFile } from "node:child_process";
import { readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { percentile } from "./stats.js";
import type { H2loadWorkload, RequestSpec, WrkWorkload } from "./workloads.js";

const run = promisify(execFile);

export interface LoadResult {
  /** Requests answered with a 2xx status. */
  ok: number;
  /** Requests that failed: non-2xx statuses, resets, timeouts, or never sent. */
  failed: number;
  seconds: number;
  /** ok / seconds. */
  rate: number;
  /** Latency percentiles of the successful requests; undefined when there are none. */
  p50Ms: number | undefined;
  p99Ms: number | undefined;
}

/** Runs `file args` for at most timeoutMs; the tool's own limits should end it well before. */
async function runBounded(file: string, args: string[], timeoutMs: number): Promise<string> {
  try {
    const { stdout } = await run(file, args, { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 16 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { killed?: boolean; stderr?: string; message: string };
    if (e.killed) throw new Error(`${file} did not finish within ${timeoutMs / 1000} s`);
    throw new Error(`${file} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Writes a request body to a file h2load can send with -d; undefined for bodiless requests. */
export async function writeBodyFile(dir: string, name: string, request: RequestSpec): Promise<string | undefined> {
  if (request.body === undefined) return undefined;
  const file = join(dir, `${name}.body`);
  await writeFile(file, request.body);
  return file;
}

export async function runH2load(
  workload: H2loadWorkload,
  baseUrl: string,
  /** A count of requests, or a duration (requests still open at its end are not counted). */
  amount: { requests: number } | { seconds: number },
  files: { body: string | undefined; log: string },
  timeoutMs: number,
): Promise<LoadResult> {
  const { request } = workload;
  const args = [
    ...("requests" in amount ? ["-n", String(amount.requests)] : ["-D", String(amount.seconds)]),
    ...["-c", String(workload.connections), "-m", String(workload.streams), "-t", "1"],
    ...["--log-file", files.log],
    ...(files.body === undefined ? [] : ["-d", files.body]),
    ...Object.entries(request.headers).flatMap(([name, value]) => ["-H", `${name}: ${value}`]),
    baseUrl + request.path,
  ];
  // h2load appends to its log file; each run reads only its own requests.
  await rm(files.log, { force: true });
  const stdout = await runBounded("h2load", args, timeoutMs);
  const finished = /finished in ([\d.]+)(ms|s),/.exec(stdout);
  const counts = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded/.exec(stdout);
  const twoXx = /status codes: (\d+) 2xx/.exec(stdout);
  if (!finished || !counts || !twoXx) throw new Error(`unexpected h2load output:\n${stdout}`);
  const seconds = Number(finished[1]) / (finished[2] === "ms" ? 1000 : 1);
  const ok = Math.min(Number(counts[2]), Number(twoXx[1]));
  // Columns: start (µs since epoch), HTTP status, µs until the end of the response.
  // Failed requests (status -1) carry no meaningful time.
  const latencies = (await readFile(files.log, "latin1"))
    .split("\n")
    .map((line) => line.split("\t"))
    .filter(([, status]) => status !== undefined && status.startsWith("2"))
    .map(([, , micros]) => Number(micros));
  await rm(files.log); // up to tens of MB; only the peers' logs are kept
  const sorted = Float64Array.from(latencies).sort();
  const ms = (p: number) => (sorted.length === 0 ? undefined : percentile(sorted, p) / 1000);
  return {
    ok,
    failed: Number(counts[1]) - ok,
    seconds,
    rate: ok / seconds,
    p50Ms: ms(50),
    p99Ms: ms(99),
  };
}

export async function runWrk(workload: WrkWorkload, baseUrl: string, seconds: number, timeoutMs: number): Promise<LoadResult> {
  const { request } = workload;
  const args = [
    ...["-t1", `-c${workload.connections}`, `-d${seconds}s`, "--timeout", "10s"],
    ...["-s", join(import.meta.dirname, "wrk", "report.lua")],
    baseUrl + request.path,
    "--",
    request.method,
    request.body?.toString("latin1") ?? "",
    ...Object.entries(request.headers).map(([name, value]) => `${name}: ${value}`),
  ];
  const stdout = await runBounded("wrk", args, timeoutMs);
  const line = /^WRK_JSON (.*)$/m.exec(stdout);
  if (!line) throw new Error(`unexpected wrk output:\n${stdout}`);
  const r = JSON.parse(line[1]!) as {
    requests: number;
    duration_us: number;
    status_errors: number;
    socket_errors: number;
    p50_us: number;
    p99_us: number;
  };
  const ok = r.requests - r.status_errors;
  return {
    ok,
    failed: r.status_errors + r.socket_errors,
    seconds: r.duration_us / 1e6,
    rate: ok / (r.duration_us / 1e6),
    p50Ms: r.p50_us / 1000,
    p99Ms: r.p99_us / 1000,
  };
}
