import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { access, readdir, readFile } from "node:fs/promises";
import { isBuiltin } from "node:module";
import { join, posix, relative } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import type { Metafile } from "esbuild";
import { parse } from "yaml";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { buildWeb } from "../scripts/build-web.js";
import { buildServer, serverBundle } from "../scripts/build.js";
import { createRouteGuideClient } from "../src/client/client.js";
import { parseConfig, type Config } from "../src/config.js";
import { webBundleDir } from "../src/http/static.js";
import { shutdownFlushMs } from "../src/observability/tracing.js";
import { defaultDataFile } from "../src/routeguide/directory.js";
import { statusMarginMs } from "../src/transport/shutdown.js";

// The Dockerfile and deploy/kubernetes/ read against the server they run, so the two cannot
// drift apart: no container engine or cluster runs here. The image's entry command itself is
// started from the bundle, as the image starts it.

const root = fileURLToPath(new URL("..", import.meta.url));
const fromRoot = (file: string) => relative(root, file).split("\\").join("/");

// ---- The Dockerfile, as its instructions -------------------------------------------------

interface Stage {
  image: string;
  name: string | undefined;
  instructions: { keyword: string; args: string }[];
}

/** Stages in order; continuation lines joined, comments dropped. Enough for this Dockerfile. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.replace(/\\\n/g, " ").split("\n");
  for (const line of lines.map((l) => l.trim())) {
    if (line === "" || line.startsWith("#")) continue;
    const [, keyword, args] = /^(\S+)\s+(.*)$/.exec(line)!;
    if (keyword!.toUpperCase() === "FROM") {
      const [image, as, name] = args!.split(/\s+/);
      assert.ok(as === undefined || as.toUpperCase() === "AS", `FROM ${args}`);
      stages.push({ image: image!, name, instructions: [] });
    } else {
      assert.ok(stages.length > 0, `${keyword} before FROM`);
      stages.at(-1)!.instructions.push({ keyword: keyword!.toUpperCase(), args: args! });
    }
  }
  return stages;
}

const all = (stage: Stage, keyword: string) =>
  stage.instructions.filter((i) => i.keyword === keyword).map((i) => i.args);
const last = (stage: Stage, keyword: string) => all(stage, keyword).at(-1);

/** Each COPY: the stage it copies from, and where its sources land, relative to WORKDIR. */
function copies(stage: Stage): { from: string | undefined; paths: string[] }[] {
  const workdir = last(stage, "WORKDIR") ?? "/";
  return all(stage, "COPY").map((args) => {
    const words = args.split(/\s+/);
    const from = words[0]!.startsWith("--from=") ? words.shift()!.slice("--from=".length) : undefined;
    assert.ok(!words.some((w) => w.startsWith("--") || w.startsWith("[")), `COPY ${args}: only plain sources`);
    const dest = words.pop()!;
    // A destination ending in "/" is a folder that takes each source by its name.
    const targets = dest.endsWith("/") ? words.map((w) => posix.join(dest, posix.basename(w))) : [dest];
    return { from, paths: targets.map((t) => posix.relative(workdir, posix.resolve(workdir, t))) };
  });
}

// ---- .dockerignore, for the forms it uses ------------------------------------------------

/** Whether `file` is in the build context: the last pattern that names it or a folder above it wins. */
function inContext(patterns: string[], file: string): boolean {
  let included = true;
  for (const pattern of patterns) {
    const negated = pattern.startsWith("!");
    const path = (negated ? pattern.slice(1) : pattern).replace(/\/$/, "");
    if (path === "*" || file === path || file.startsWith(`${path}/`)) included = negated;
  }
  return included;
}

// ---- The Kubernetes objects, as far as the checks read them -------------------------------

interface GrpcProbe {
  grpc: { port: number; service?: string };
  periodSeconds: number;
  failureThreshold: number;
}

interface Container {
  name: string;
  image: string;
  args: string[];
  env?: { name: string; value: string }[];
  ports: { name: string; containerPort: number; protocol: string }[];
  readinessProbe: GrpcProbe;
  livenessProbe: GrpcProbe;
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
}

interface Deployment {
  kind: "Deployment";
  spec: {
    replicas: number;
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds: number;
        securityContext: { runAsNonRoot: boolean };
        containers: Container[];
      };
    };
  };
}

interface Service {
  kind: "Service";
  spec: {
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort: number | string; appProtocol: string }[];
  };
}

interface PodDisruptionBudget {
  kind: "PodDisruptionBudget";
  spec: { maxUnavailable: number; selector: { matchLabels: Record<string, string> } };
}

type KubernetesObject = Deployment | Service | PodDisruptionBudget;

async function kubernetesObjects(): Promise<KubernetesObject[]> {
  const dir = join(root, "deploy/kubernetes");
  const files = (await readdir(dir)).filter((f) => f.endsWith(".yaml"));
  return Promise.all(files.map(async (f) => parse(await readFile(join(dir, f), "utf8")) as KubernetesObject));
}

function one<K extends KubernetesObject["kind"]>(objects: KubernetesObject[], kind: K): Extract<KubernetesObject, { kind: K }> {
  const found = objects.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in deploy/kubernetes/`);
  return found[0] as Extract<KubernetesObject, { kind: K }>;
}

// ---- What every check reads ----------------------------------------------------------------

let stages: Stage[];
let final: Stage;
let entrypoint: string[];
let dockerEnv: Record<string, string>;
let dockerignore: string[];
let packageJson: { dependencies: Record<string, string>; devDependencies: Record<string, string>; scripts: Record<string, string> };
let deployment: Deployment;
let container: Container;
let service: Service;
let pdb: PodDisruptionBudget;
/** The server's config as the container gets it: the Deployment's args and the pod's environment. */
let config: Config;
let metafile: Metafile;

before(async () => {
  stages = parseDockerfile(await readFile(join(root, "Dockerfile"), "utf8"));
  final = stages.at(-1)!;
  // Exec form, a JSON array: node is PID 1 and gets the signals, no shell in between.
  entrypoint = JSON.parse(last(final, "ENTRYPOINT")!) as string[];
  assert.ok(Array.isArray(entrypoint));
  dockerEnv = Object.fromEntries(all(final, "ENV").map((args) => /^(\w+)=(\S+)$/.exec(args)!.slice(1)));
  dockerignore = (await readFile(join(root, ".dockerignore"), "utf8")).split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  packageJson = JSON.parse(await readFile(join(root, "package.json"), "utf8")) as typeof packageJson;
  const objects = await kubernetesObjects();
  deployment = one(objects, "Deployment");
  service = one(objects, "Service");
  pdb = one(objects, "PodDisruptionBudget");
  assert.equal(deployment.spec.template.spec.containers.length, 1);
  container = deployment.spec.template.spec.containers[0]!;
  const podEnv = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value]));
  config = parseConfig(container.args, { ...dockerEnv, ...podEnv });
  metafile = await buildServer();
});

describe("Dockerfile", () => {
  it("builds on the Node version the tests run on, in every stage", () => {
    const node = packageJson.devDependencies.node!;
    for (const stage of stages) assert.match(stage.image, new RegExp(`^node:${node.replaceAll(".", "\\.")}-`), stage.image);
    assert.equal(process.version, `v${node}`);
  });

  it("runs node on the bundle that npm run build makes, with npm start's Node flags, in exec form", () => {
    const [command, ...rest] = entrypoint;
    assert.equal(command, "node");
    assert.equal(rest.at(-1), fromRoot(serverBundle));
    assert.equal(last(final, "CMD"), undefined, "the Deployment's args are all the server's flags");
    // npm start: `exec node <node flags> --import tsx src/main.ts`; the bundle needs no loader.
    const start = packageJson.scripts.start!.split(/\s+/);
    assert.ok(start.includes("src/main.ts"), `npm start runs src/main.ts: ${packageJson.scripts.start}`);
    const startFlags = start.slice(0, start.indexOf("src/main.ts")).filter((w) => w.startsWith("--") && w !== "--import");
    assert.deepEqual(rest.slice(0, -1), startFlags);
    assert.match(packageJson.scripts.build!, /\bscripts\/build\.ts$/);
  });

  it("builds in one stage, installs only production packages for another, and the last one only copies their output", () => {
    const build = stages.find((s) => all(s, "RUN").some((r) => /\bnpm run build\b/.test(r)))!;
    assert.ok(build, "a stage runs npm run build");
    assert.ok(all(build, "RUN").some((r) => /\bnpm run build:web\b/.test(r)), "and npm run build:web");
    assert.ok(all(build, "RUN").some((r) => /^npm ci$/.test(r)), "from the lockfile");
    const packages = copies(final).find((c) => c.paths.includes("node_modules"))!;
    const packageStage = stages.find((s) => s.name === packages.from)!;
    assert.ok(all(packageStage, "RUN").some((r) => /^npm ci --omit=dev$/.test(r)), "node_modules has no dev packages");
    assert.deepEqual(all(final, "RUN"), [], "the final stage runs nothing");
  });

  it("applies patches/ in every stage that installs packages, before npm ci runs patch-package", async () => {
    const patches = (await readdir(join(root, "patches"))).filter((f) => f.endsWith(".patch"));
    assert.ok(patches.length > 0);
    for (const file of patches) assert.ok(inContext(dockerignore, `patches/${file}`), `patches/${file} is in the build context`);
    assert.equal(packageJson.scripts.postinstall, "patch-package");
    // npm ci --omit=dev runs the postinstall too: the tool must be a production package.
    assert.ok("patch-package" in packageJson.dependencies, "patch-package is in dependencies");
    const installing = stages.filter((s) => all(s, "RUN").some((r) => /^npm ci\b/.test(r)));
    assert.ok(installing.length >= 2);
    for (const stage of installing) {
      const at = (test: (i: { keyword: string; args: string }) => boolean) => stage.instructions.findIndex(test);
      const copied = at((i) => i.keyword === "COPY" && /^patches\/? \.\/patches\/?$/.test(i.args));
      const install = at((i) => i.keyword === "RUN" && /^npm ci\b/.test(i.args));
      assert.ok(copied >= 0 && copied < install, `stage ${stage.name}: COPY patches ./patches before npm ci`);
    }
  });

  it("puts every file the server reads where the bundle looks for it", () => {
    const needed = [serverBundle, defaultDataFile, webBundleDir].map(fromRoot).map((f) => f.replace(/\/$/, ""));
    needed.push("package.json"); // "type": "module" makes the bundle an ES module
    const copied = copies(final).flatMap((c) => c.paths);
    for (const file of needed) {
      assert.ok(copied.some((p) => file === p || file.startsWith(`${p}/`)), `${file} is copied into the image`);
    }
  });

  it("imports only Node's own modules and production dependencies at run time", () => {
    const imports = Object.values(metafile.outputs).flatMap((o) => o.imports).filter((i) => i.external);
    assert.ok(imports.length > 0);
    for (const { path } of imports) {
      if (isBuiltin(path)) continue;
      const name = path.split("/").slice(0, path.startsWith("@") ? 2 : 1).join("/");
      assert.ok(name in packageJson.dependencies, `${name} is imported by the bundle, so it must be in dependencies`);
    }
  });

  it("has every file of the build in its build context", async () => {
    const sources = Object.keys(metafile.inputs);
    sources.push("package.json", "package-lock.json", "scripts/build.ts", "scripts/build-web.ts", fromRoot(defaultDataFile));
    for (const file of await readdir(join(root, "web"))) sources.push(`web/${file}`);
    for (const file of sources) assert.ok(inContext(dockerignore, file), `${file} is not in .dockerignore's context`);
    for (const file of ["node_modules/tsx/package.json", fromRoot(serverBundle), ".git/HEAD"]) {
      assert.equal(inContext(dockerignore, file), false, `${file} stays out of the build context`);
    }
  });

  it("runs as a numeric non-root user and exposes the server's port", () => {
    assert.match(last(final, "USER")!, /^[1-9]\d*(:\d+)?$/);
    assert.deepEqual(all(final, "EXPOSE"), [String(config.port)]);
  });
});

describe("Kubernetes", () => {
  it("runs one process per pod, on every interface without TLS: the kubelet probes the pod's IP over plain h2", () => {
    assert.equal(config.workers, 1);
    assert.equal(config.host, "::");
    assert.equal(config.tls, undefined);
    assert.equal(deployment.spec.template.spec.securityContext.runAsNonRoot, true);
  });

  it("has one port, the server's, for the container, the probes and the Service", () => {
    assert.deepEqual(container.ports.map((p) => p.containerPort), [config.port]);
    const [port] = container.ports;
    assert.equal(container.readinessProbe.grpc.port, config.port);
    assert.equal(container.livenessProbe.grpc.port, config.port);
    assert.equal(service.spec.ports.length, 1);
    const [servicePort] = service.spec.ports;
    assert.ok(servicePort!.targetPort === port!.name || servicePort!.targetPort === port!.containerPort);
    // HTTP/2 with prior knowledge to the pod, which gRPC needs and which this port speaks.
    assert.equal(servicePort!.appProtocol, "kubernetes.io/h2c");
  });

  it("selects the Deployment's pods from the Service and the PodDisruptionBudget", () => {
    const labels = deployment.spec.template.metadata.labels;
    for (const selector of [deployment.spec.selector.matchLabels, service.spec.selector, pdb.spec.selector.matchLabels]) {
      for (const [key, value] of Object.entries(selector)) assert.equal(labels[key], value, key);
    }
    assert.ok(pdb.spec.maxUnavailable < deployment.spec.replicas, "a drain leaves pods serving");
  });

  it("gives the server longer than its whole shutdown before SIGKILL or a liveness restart", () => {
    const preStopMs = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
    // With OTEL_* set, the last spans are flushed after the server has closed.
    const shutdownMs = config.shutdownDelayMs + config.shutdownGraceMs + statusMarginMs + shutdownFlushMs;
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds * 1000;
    assert.ok(grace > preStopMs + shutdownMs, `${grace} ms > preStop ${preStopMs} ms + shutdown ${shutdownMs} ms`);
    // Liveness fails from the moment shutdown starts (NOT_SERVING); a kubelet that still probes must not restart it.
    const liveness = container.livenessProbe;
    assert.ok(liveness.periodSeconds * liveness.failureThreshold * 1000 > shutdownMs);
    assert.ok(preStopMs + config.shutdownDelayMs > 0, "endpoints are removed while the server still accepts connections");
  });

  it("ends connections after an age, so that clients reconnect and new pods get traffic", () => {
    assert.ok(config.lifetime.maxAgeMs > 0);
    // The default grace is unlimited: a stream that never ends would pin its connection to this pod.
    assert.ok(config.lifetime.maxAgeGraceMs > 0);
  });
});

describe("the image's entry command, started from the bundle", () => {
  let server: ChildProcess;
  let baseUrl: string;
  let exit: Promise<number | null>;

  before(async () => {
    // Other test files serve out/web while this one runs: rebuild it only when it is missing.
    await access(join(webBundleDir, "index.html")).catch(() => buildWeb());
    // node is this test's own Node (the Dockerfile's version, checked above); in the image's
    // layout (the repository's) and environment, with the Deployment's args, on loopback and a
    // free port.
    // No shutdown delay: it only waits, and the SIGTERM below should not.
    const [, ...nodeArgs] = entrypoint;
    const overrides = ["--host=127.0.0.1", "--port=0", "--shutdown-delay=0"];
    server = spawn(process.execPath, [...nodeArgs, ...container.args, ...overrides], {
      cwd: root,
      env: { PATH: process.env.PATH, ...dockerEnv },
      stdio: ["ignore", "pipe", "inherit"],
    });
    exit = new Promise((resolve) => server.once("exit", resolve));
    const lines = createInterface({ input: server.stdout! });
    for await (const line of lines) {
      const match = /^Server started on port (\d+)$/.exec(line);
      if (match) {
        baseUrl = `http://127.0.0.1:${match[1]}`;
        break;
      }
    }
    assert.ok(baseUrl, "the server printed its start line");
    // Keep reading, so the log never fills the pipe.
    server.stdout!.resume();
  });

  after(() => {
    if (server.exitCode === null) server.kill("SIGKILL");
  });

  it("answers the probes' health checks with SERVING", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl }));
    for (const probe of [container.readinessProbe, container.livenessProbe]) {
      const { status } = await health.check({ service: probe.grpc.service ?? "" });
      assert.equal(status, ServingStatus.SERVING, `probe service "${probe.grpc.service}"`);
    }
  });

  it("answers gRPC and Connect calls with the default data file", async () => {
    const grpc = createRouteGuideClient({ baseUrl, protocol: "grpc" });
    assert.equal((await grpc.getPerson({ name: "Alice" })).age, 30);
    const connect = createRouteGuideClient({ baseUrl, protocol: "connect", json: true, httpVersion: "1.1" });
    assert.equal((await connect.getPerson({ name: "Bob" })).name, "Bob");
  });

  it("serves the web page", async () => {
    const res = await fetch(`${baseUrl}/`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<html/i);
  });

  it("exits 0 on SIGTERM", async () => {
    server.kill("SIGTERM");
    assert.equal(await exit, 0);
  });
});
