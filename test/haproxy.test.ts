// deploy/haproxy/haproxy.cfg, as shipped, in front of three real server
// processes: every protocol through its one port, per-call balancing, and
// calls under load while one instance is stopped and another killed.
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { createRouteGuideClient } from "../src/client/client.js";
import { repo, type ServerProcess, startServerProcess } from "./support/server-process.js";

const config = `${repo}deploy/haproxy/haproxy.cfg`;
const shutdownDelay = "1500ms"; // longer than fall (2) × inter (500ms) in the config
const shutdownGrace = "2s";

/** Why HAProxy cannot run here, or undefined when it can. In CI a missing HAProxy is a failure, not a skip. */
async function haproxySkipReason(): Promise<string | undefined> {
  const found = await promisify(execFile)("haproxy", ["-v"]).then(
    () => true,
    () => false,
  );
  if (found) return undefined;
  const reason = "HAProxy is not installed (apt-get install haproxy, or bash scripts/setup.sh)";
  if (process.env.CI === "true") throw new Error(reason);
  return reason;
}

const skip = await haproxySkipReason();

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.on("error", reject);
  });
}

/** Polls `condition` (a call that fails counts as false) until it holds; a thrown error ends the wait. */
async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const holds = () => condition().catch((err: unknown) => (err instanceof ConnectError ? false : Promise.reject(err)));
  for (const start = performance.now(); !(await holds()); await sleep(50)) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
  }
}

/** GetPerson calls this instance has started, from its own /metrics. */
async function callsSeen(instance: ServerProcess): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${instance.port}/metrics`)).text();
  return text
    .split("\n")
    .filter((line) => line.startsWith("grpc_server_started_total{") && line.includes('grpc_method="GetPerson"'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
}

/** A Connect JSON call over HTTP/1.1 (node:http speaks nothing else). */
function connectJsonOverHttp1(port: number): Promise<{ status: number; body: string; httpVersion: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: "127.0.0.1", port, method: "POST", path: "/RouteGuide/GetPerson", headers: { "content-type": "application/json" } },
      (res) => {
        let body = "";
        res.on("data", (chunk) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, body, httpVersion: res.httpVersion }));
      },
    );
    req.on("error", reject);
    req.end(JSON.stringify({ name: "Alice" }));
  });
}

describe("behind HAProxy (deploy/haproxy/haproxy.cfg)", { skip }, () => {
  let instances: ServerProcess[] = [];
  let haproxy: ChildProcess;
  let port: number;
  let url: string;

  before(async () => {
    instances = await Promise.all(
      [1, 2, 3].map(() =>
        startServerProcess([
          "--host", "127.0.0.1", "--port", "0", "--log-level", "warn",
          "--shutdown-delay", shutdownDelay, "--shutdown-grace", shutdownGrace,
        ]),
      ),
    );
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    const env = {
      ...process.env,
      ROUTEGUIDE_LISTEN: `127.0.0.1:${port}`,
      ...Object.fromEntries(instances.map((instance, i) => [`ROUTEGUIDE_${i + 1}`, `127.0.0.1:${instance.port}`])),
    };
    // -db: in the foreground, logs on stderr; it stops on SIGTERM.
    haproxy = spawn("haproxy", ["-db", "-f", config], { env, stdio: ["ignore", "inherit", "inherit"] });
    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    // Bounded generously: four processes starting at once on two shared cores.
    await waitFor(async () => {
      // A config HAProxy rejects ends it at once: say so rather than wait.
      if (haproxy.exitCode !== null) throw new Error(`haproxy exited with ${haproxy.exitCode}`);
      return (await health.check({})).status === ServingStatus.SERVING;
    }, "HAProxy to pass a call", 20_000);
    await sleep(1_200); // rise 2 × inter 500ms: every instance in rotation
  });

  after(() => {
    haproxy?.kill("SIGTERM");
    for (const instance of instances) if (instance.child.exitCode === null && instance.child.signalCode === null) instance.child.kill("SIGKILL");
  });

  it("carries gRPC, gRPC-Web, Connect over h2c and Connect JSON over HTTP/1.1 on one port", async () => {
    const grpc = createRouteGuideClient({ baseUrl: url, protocol: "grpc" });
    assert.equal((await grpc.getPerson({ name: "Alice" })).address?.city, "New York");
    const streamed: string[] = [];
    for await (const person of grpc.getPeople((async function* () {
      yield { name: "Alice" };
      yield { name: "Bob" };
    })())) streamed.push(person.name);
    assert.deepEqual(streamed, ["Alice", "Bob"]);

    const grpcWeb = createRouteGuideClient({ baseUrl: url, protocol: "grpc-web", httpVersion: "1.1" });
    assert.equal((await grpcWeb.getPerson({ name: "Bob" })).address?.city, "Los Angeles");

    const connectH2c = createRouteGuideClient({ baseUrl: url, protocol: "connect", httpVersion: "2" });
    assert.equal((await connectH2c.getPerson({ name: "Alice" })).name, "Alice");

    const http1 = await connectJsonOverHttp1(port);
    assert.equal(http1.httpVersion, "1.1");
    assert.equal(http1.status, 200);
    assert.equal(JSON.parse(http1.body).address.city, "New York");

    const healthz = await fetch(`${url}/healthz`);
    assert.equal(healthz.status, 200);
  });

  it("balances calls on one client connection across every instance", async () => {
    const before = await Promise.all(instances.map(callsSeen));
    const grpc = createRouteGuideClient({ baseUrl: url, protocol: "grpc" }); // one HTTP/2 connection
    for (let i = 0; i < 30; i++) await grpc.getPerson({ name: "Alice" });
    const after = await Promise.all(instances.map(callsSeen));
    const served = after.map((n, i) => n - before[i]!);
    assert.equal(served.reduce((a, b) => a + b), 30);
    for (const n of served) assert.ok(n > 0, `calls per instance: ${served.join(", ")}`);
  });

  it("under gRPC load: SIGTERM to one instance fails no call, SIGKILL to another fails < 0.5% and none from 2 s after", { timeout: 30_000 }, async (t) => {
    const [stopped, killed] = instances as [ServerProcess, ServerProcess, ServerProcess];
    const grpc = createRouteGuideClient({ baseUrl: url, protocol: "grpc" });
    // When each call started and ended, in ms from the start of the load.
    const calls: Array<{ atMs: number; endMs: number; ok: boolean; error?: string }> = [];
    const start = performance.now();
    const until = start + 7_000;
    const loop = async () => {
      while (performance.now() < until) {
        const atMs = performance.now() - start;
        await grpc.getPerson({ name: "Alice" }, { timeoutMs: 3_000 }).then(
          (person) => calls.push({ atMs, endMs: performance.now() - start, ok: person.name === "Alice" }),
          (err: unknown) => calls.push({ atMs, endMs: performance.now() - start, ok: false, error: String(err) }),
        );
      }
    };
    const load = Promise.all(Array.from({ length: 8 }, loop));

    await sleep(1_000);
    const termAt = performance.now() - start;
    stopped.child.kill("SIGTERM");
    assert.equal(await stopped.exited, 0, "the stopped instance drains and exits 0");
    const killAt = performance.now() - start;
    killed.child.kill("SIGKILL");
    await load;

    // Calls that ended before the kill saw only the stop; the ones in flight at the kill count against it.
    const failed = calls.filter((c) => !c.ok);
    const endedBeforeKill = failed.filter((c) => c.endMs < killAt);
    const byKill = failed.filter((c) => c.endMs >= killAt);
    const endedAfterKill = calls.filter((c) => c.endMs >= killAt).length;
    t.diagnostic(
      `${calls.length} calls; SIGTERM at ${Math.round(termAt)} ms, SIGKILL at ${Math.round(killAt)} ms; ` +
        `failed: ${endedBeforeKill.length} before the kill, ${byKill.length} of ${endedAfterKill} from the kill on`,
    );
    assert.deepEqual(endedBeforeKill, [], "no call fails while an instance stops");
    assert.ok(byKill.length < endedAfterKill * 0.005, `${byKill.length} of ${endedAfterKill} calls failed from the kill on`);
    assert.deepEqual(failed.filter((c) => c.atMs >= killAt + 2_000), [], "no call started 2 s after the kill fails");
    assert.ok(calls.filter((c) => c.atMs >= killAt + 2_000).length > 0, "calls went on after the kill");
  });
});
