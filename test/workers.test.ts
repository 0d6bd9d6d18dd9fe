import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import https from "node:https";
import { availableParallelism } from "node:os";
import http2 from "node:http2";
import { describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { PersonSchema } from "../gen/person_pb.js";
import { envelope, h2Exchange, nameBytes } from "./support/raw.js";
import { startServerProcess, type LogEntry, type ServerProcess } from "./support/server-process.js";
import { throwawayCertificate } from "./support/tls.js";
import { parseConfig } from "../src/config.js";

// `--workers 2`: the primary and its two workers as real processes, stopped with real signals.

const start = (...more: string[]) => startServerProcess(["--host", "127.0.0.1", "--port", "0", "--workers", "2", ...more]);

/** A Connect JSON GetPerson on a connection of its own (TLS with `tls`); resolves with the client's local port. */
function getPersonOnNewConnection(port: number, tls = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const options = { host: "127.0.0.1", port, method: "POST", path: "/RouteGuide/GetPerson", agent: false, headers: { "content-type": "application/json" } };
    // The throwaway certificate is its own CA; what matters here is which worker answers.
    const req = (tls ? https : http).request(
      tls ? { ...options, rejectUnauthorized: false } : options,
      (res) => {
        res.resume();
        res.on("end", () => (res.statusCode === 200 ? resolve(localPort) : reject(new Error(`HTTP ${res.statusCode}`))));
      },
    );
    let localPort = 0;
    req.on("socket", (socket) => socket.on("connect", () => (localPort = socket.localPort!)));
    req.on("error", reject);
    req.end('{"name":"Alice"}');
  });
}

function getText(port: number, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, text }));
      })
      .on("error", reject);
  });
}

const grpcGetPerson = { ":path": "/RouteGuide/GetPerson", "content-type": "application/grpc", te: "trailers" };

const rpcLines = (server: ServerProcess, procedure: string) => server.log.filter((e) => e.msg === "rpc" && e.procedure === procedure);

/** The worker that logged the call from this client port. */
async function workerOf(server: ServerProcess, localPort: number): Promise<LogEntry> {
  return server.waitForLog((e) => e.msg === "rpc" && e.peer === `127.0.0.1:${localPort}`, `for the call from port ${localPort}`);
}

/**
 * An HTTP/2 connection with one gRPC stream open; `next()` reads the next
 * message's bytes. A server-streaming call needs `endAfterFirst`: its server
 * reads the whole request before it answers.
 */
async function openStream(port: number, path: string, firstMessage: Uint8Array, endAfterFirst = false) {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {}); // the stream reports what matters
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => {});
  const ended = new Promise<string | undefined>((resolve) => {
    let status: string | undefined;
    stream.on("trailers", (t) => (status = String(t["grpc-status"])));
    stream.on("close", () => resolve(status));
  });
  let buffered = Buffer.alloc(0);
  const received: Uint8Array[] = [];
  const waiting: Array<(bytes: Uint8Array) => void> = [];
  stream.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 5 && buffered.length >= 5 + buffered.readUInt32BE(1)) {
      const length = buffered.readUInt32BE(1);
      received.push(buffered.subarray(5, 5 + length));
      buffered = buffered.subarray(5 + length);
    }
    while (received.length > 0 && waiting.length > 0) waiting.shift()!(received.shift()!);
  });
  stream.write(envelope(0, firstMessage));
  if (endAfterFirst) stream.end();
  await once(session, "connect");
  return {
    session,
    localPort: session.socket.localPort!,
    next: () =>
      new Promise<Uint8Array>((resolve) => {
        const message = received.shift();
        if (message === undefined) waiting.push(resolve);
        else resolve(message);
      }),
    send: (bytes: Uint8Array) => stream.write(envelope(0, bytes)),
    end: () => stream.end(),
    ended,
    close: () => session.destroy(),
  };
}

// A server that never exits would hang the run; make it a failure instead.
describe("--workers 2", { timeout: 30_000 }, () => {
  it("both workers serve, /metrics sums them on any worker, a killed worker is restarted", async () => {
    const server = await start();
    try {
      const calls = 8;
      const ports = [];
      for (let i = 0; i < calls; i++) ports.push(await getPersonOnNewConnection(server.port));
      const workers = new Set<unknown>();
      for (const port of ports) workers.add((await workerOf(server, port)).worker);
      assert.deepEqual([...workers].sort(), [1, 2], "the primary hands connections to both workers");

      // Each scrape on a connection of its own, so that both workers answer some of them.
      for (let i = 0; i < 4; i++) {
        const { status, text } = await getText(server.port, "/metrics");
        assert.equal(status, 200);
        const handled = /^grpc_server_handled_total\{[^}]*grpc_method="GetPerson",protocol="connect",grpc_code="OK"\} (\d+)$/m.exec(text);
        assert.equal(Number(handled?.[1]), calls, "the sum over both workers");
      }
      for (let i = 0; i < 4; i++) assert.deepEqual(await getText(server.port, "/healthz"), { status: 200, text: "SERVING\n" });

      const victim = rpcLines(server, "/RouteGuide/GetPerson").find((e) => e.worker === 1)!;
      process.kill(victim.pid!, "SIGKILL");
      await server.waitForLog(
        (e) => e.worker === 0 && e.msg === `worker 1 (pid ${victim.pid}) exited with signal SIGKILL; restarting it in 100 ms`,
        "about the restart",
      );
      const again = await server.waitForLog((e) => e.worker === 0 && /^worker 1 \(pid \d+\) is serving again$/.test(e.msg!), "for the new worker");
      assert.notEqual(again.msg, `worker 1 (pid ${victim.pid}) is serving again`);
      // Served by the new worker 1 as well as by worker 2.
      const served = new Set<string>();
      for (let i = 0; i < 8 && served.size < 2; i++) {
        const entry = await workerOf(server, await getPersonOnNewConnection(server.port));
        served.add(`${entry.worker}/${entry.pid}`);
      }
      assert.equal(served.size, 2);
      assert.ok(![...served].includes(`1/${victim.pid}`));
    } finally {
      server.child.kill("SIGKILL");
    }
  });

  it("SIGTERM turns every worker NOT_SERVING, lets open streams finish, and exits 0", async () => {
    const server = await start("--shutdown-grace", "60s");
    // Watch streams and a GetPeople stream, on connections of their own: some land on each worker.
    const watches = await Promise.all([1, 2, 3, 4].map(() => openStream(server.port, "/grpc.health.v1.Health/Watch", new Uint8Array(), true)));
    for (const watch of watches) assert.equal(fromBinary(HealthCheckResponseSchema, await watch.next()).status, ServingStatus.SERVING);
    // Which worker holds each connection: the log line of a unary call on it.
    const workers = new Set<unknown>();
    for (const watch of watches) {
      const reply = await h2Exchange(watch.session, grpcGetPerson, envelope(0, nameBytes("Alice")));
      assert.equal(reply.trailers["grpc-status"], "0");
      workers.add((await workerOf(server, watch.localPort)).worker);
    }
    assert.deepEqual([...workers].sort(), [1, 2], "the Watch streams reached both workers");
    const people = await openStream(server.port, "/RouteGuide/GetPeople", nameBytes("Alice"));
    assert.equal(fromBinary(PersonSchema, await people.next()).name, "Alice");

    server.child.kill("SIGTERM");
    for (const watch of watches) assert.equal(fromBinary(HealthCheckResponseSchema, await watch.next()).status, ServingStatus.NOT_SERVING);
    for (const watch of watches) watch.close();
    // Draining: the open stream still answers, and ends with OK.
    people.send(nameBytes("Bob"));
    assert.equal(fromBinary(PersonSchema, await people.next()).name, "Bob");
    people.end();
    assert.equal(await people.ended, "0");
    people.close();
    assert.equal(await server.exited, 0);
  });

  it("serves TLS from both workers", async () => {
    const cert = await throwawayCertificate();
    const server = await start("--tls-cert", cert.certFile, "--tls-key", cert.keyFile);
    try {
      const workers = new Set<unknown>();
      for (let i = 0; i < 8 && workers.size < 2; i++) workers.add((await workerOf(server, await getPersonOnNewConnection(server.port, true))).worker);
      assert.deepEqual([...workers].sort(), [1, 2]);
    } finally {
      server.child.kill("SIGKILL");
      await cert.remove();
    }
  });

  it("auto is one worker per core", () => {
    assert.equal(parseConfig(["--workers", "auto"]).workers, availableParallelism());
  });

  it("a second signal exits at once, with open streams cut", async () => {
    const server = await start("--shutdown-grace", "60s");
    const people = await openStream(server.port, "/RouteGuide/GetPeople", nameBytes("Alice"));
    assert.equal(fromBinary(PersonSchema, await people.next()).name, "Alice");
    server.child.kill("SIGTERM");
    await server.waitForLog((e) => e.worker === 0 && /^SIGTERM: shutting down 2 workers/.test(e.msg!), "about the shutdown");
    server.child.kill("SIGINT");
    assert.equal(await server.exited, 1);
    // The stream's worker was killed, not drained: no trailers.
    assert.equal(await people.ended, undefined);
    people.close();
  });
});
