import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import http2 from "node:http2";
import net from "node:net";
import { after, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { NameSchema, type Name } from "../gen/route_guide_pb.js";
import { createRouteGuideClient } from "../src/client/client.js";
import { statusMarginMs } from "../src/transport/shutdown.js";
import { envelope, grpcStatus, grpcWebStatus, nameBytes } from "./support/raw.js";

// The real process (`node --import tsx src/main.ts`), stopped with real signals.

const repo = new URL("..", import.meta.url).pathname;

interface ServerProcess {
  child: ChildProcess;
  port: number;
  url: string;
  exited: Promise<{ code: number | null; atMs: number }>;
}

const spawned = new Set<ChildProcess>();
// A failed test must not leave its server behind.
after(() => {
  for (const child of spawned) if (child.exitCode === null) child.kill("SIGKILL");
});

async function spawnServer(graceMs: number): Promise<ServerProcess> {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "src/main.ts", "--host", "127.0.0.1", "--port", "0", "--shutdown-grace", `${graceMs}ms`, "--log-level", "warn"],
    { cwd: repo, stdio: ["ignore", "pipe", "inherit"] },
  );
  spawned.add(child);
  const exited = new Promise<{ code: number | null; atMs: number }>((resolve) =>
    child.once("exit", (code) => resolve({ code, atMs: performance.now() })),
  );
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk;
      const match = /Server started on port (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    exited.then(() => reject(new Error(`the server exited before listening:\n${out}`)));
  });
  return { child, port, url: `http://127.0.0.1:${port}`, exited };
}

/** An async iterable of names that the test feeds while the stream is open. */
function nameQueue() {
  const pending: string[] = [];
  let wake = () => {};
  async function* names(): AsyncGenerator<Name> {
    for (;;) {
      while (pending.length > 0) yield create(NameSchema, { name: pending.shift()! });
      await new Promise<void>((resolve) => (wake = resolve));
    }
  }
  return {
    push(name: string) {
      pending.push(name);
      wake();
    },
    iterable: names(),
  };
}

/** A unary call whose request is in flight: headers and half the body sent; `finish()` sends the rest and reads the answer. */
async function halfSentH2Call(session: http2.ClientHttp2Session, contentType: string) {
  const enveloped = contentType !== "application/proto";
  const body = enveloped ? envelope(0, nameBytes("Alice")) : Buffer.from(nameBytes("Alice"));
  const stream = session.request({ ":method": "POST", ":path": "/RouteGuide/GetPerson", "content-type": contentType, te: "trailers" });
  stream.write(body.subarray(0, 3));
  const chunks: Buffer[] = [];
  let headers: http2.IncomingHttpHeaders = {};
  let trailers: http2.IncomingHttpHeaders = {};
  stream.on("response", (h) => (headers = h));
  stream.on("trailers", (t) => (trailers = t));
  stream.on("data", (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => stream.once("close", resolve));
  stream.on("error", () => {});
  return {
    async finish() {
      stream.end(body.subarray(3));
      await closed;
      const reply = { status: Number(headers[":status"]), headers, trailers, body: Buffer.concat(chunks), rstCode: stream.rstCode };
      if (contentType === "application/grpc") return grpcStatus(reply) === 0 && reply.body.includes("New York");
      if (contentType.startsWith("application/grpc-web")) return grpcWebStatus(reply) === 0 && reply.body.includes("New York");
      return reply.status === 200 && reply.body.includes("New York");
    },
  };
}

/** The same over HTTP/1.1: the server has the headers once it says 100 Continue. */
async function halfSentH1Call(port: number) {
  const body = Buffer.from(JSON.stringify({ name: "Bob" }));
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  let text = "";
  socket.on("data", (d) => (text += d));
  socket.write(
    `POST /RouteGuide/GetPerson HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
  );
  await waitFor(() => text.includes("100 Continue"));
  return {
    async finish() {
      socket.write(body);
      await new Promise((resolve) => socket.once("close", resolve));
      return /\r\n\r\nHTTP\/1\.1 200 OK[\s\S]*Los Angeles/.test(text);
    },
  };
}

async function waitFor(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const start = Date.now(); !condition(); ) {
    if (Date.now() - start > timeoutMs) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 10));
  }
}

function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

describe("graceful shutdown of the real process", () => {
  it("on SIGTERM: NOT_SERVING, no new connections, GOAWAY, unary calls in flight complete, open streams end UNAVAILABLE after the grace period, exit 0", { timeout: 30_000 }, async () => {
    const graceMs = 1_500;
    const server = await spawnServer(graceMs);
    const grpc = createGrpcTransport({ baseUrl: server.url });

    // A long bidi stream, answering as it goes.
    const names = nameQueue();
    const people = createRouteGuideClient({ baseUrl: server.url, protocol: "grpc" }).getPeople(names.iterable)[Symbol.asyncIterator]();
    names.push("Alice");
    assert.equal((await people.next()).value?.name, "Alice");

    // A health watcher.
    const watch = createClient(Health, grpc).watch({ service: "" })[Symbol.asyncIterator]();
    assert.equal((await watch.next()).value?.status, ServingStatus.SERVING);

    // A burst of unary calls in flight: every protocol, both HTTP versions.
    const session = http2.connect(server.url);
    session.on("error", () => {});
    let goaway = false;
    session.on("goaway", () => (goaway = true));
    const inFlight = [];
    for (let i = 0; i < 10; i++) {
      for (const contentType of ["application/grpc", "application/grpc-web+proto", "application/proto"]) {
        inFlight.push(await halfSentH2Call(session, contentType));
      }
    }
    await new Promise((resolve) => session.ping(resolve)); // the server has every stream's headers
    for (let i = 0; i < 5; i++) inFlight.push(await halfSentH1Call(server.port));

    // A client that never sends the body it announced: only the forced close after the grace period ends it.
    const stuck = net.connect(server.port, "127.0.0.1");
    stuck.on("error", () => {});
    let stuckReply = "";
    stuck.on("data", (d) => (stuckReply += d));
    stuck.write(`POST /RouteGuide/GetPerson HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20\r\nExpect: 100-continue\r\n\r\n`);
    await waitFor(() => stuckReply.includes("100 Continue"));

    const sentAt = performance.now();
    server.child.kill("SIGTERM");

    assert.equal((await watch.next()).value?.status, ServingStatus.NOT_SERVING, "health turns NOT_SERVING");
    await waitFor(() => goaway);
    assert.ok(await refusesConnections(server.port), "the listener no longer accepts");

    // During the grace period the stream still answers, and the calls in flight complete.
    names.push("Bob");
    assert.equal((await people.next()).value?.name, "Bob");
    const results = await Promise.all(inFlight.map((call) => call.finish()));
    assert.deepEqual(results, results.map(() => true), "every unary call in flight completed");

    // Then the stream is ended by the server.
    await assert.rejects(people.next(), (err: ConnectError) => {
      assert.equal(err.code, Code.Unavailable);
      return true;
    });
    const { code, atMs } = await server.exited;
    assert.ok(stuck.destroyed || (await new Promise((resolve) => stuck.once("close", resolve))), "the stuck client was cut off");
    assert.equal(code, 0);
    const tookMs = atMs - sentAt;
    console.log(`SIGTERM to exit: ${tookMs.toFixed(0)} ms (grace ${graceMs} ms + margin ${statusMarginMs} ms)`);
    // Generous slack for a loaded machine; without the forced close it would wait for the client forever.
    assert.ok(tookMs < graceMs + statusMarginMs + 3_000, `exited after ${tookMs.toFixed(0)} ms`);
    session.destroy();
  });

  // The timeouts bound what waiting out a minute of grace would take.
  it("exits at once on a second signal, without waiting for the grace period", { timeout: 20_000 }, async () => {
    const server = await spawnServer(60_000);
    const names = nameQueue();
    const people = createRouteGuideClient({ baseUrl: server.url, protocol: "grpc" }).getPeople(names.iterable)[Symbol.asyncIterator]();
    names.push("Alice");
    await people.next();
    const session = http2.connect(server.url);
    session.on("error", () => {});
    await new Promise((resolve) => session.once("remoteSettings", resolve));
    const goaway = new Promise((resolve) => session.once("goaway", resolve));
    server.child.kill("SIGTERM");
    await goaway; // the first signal is being handled: a minute of grace has begun
    session.destroy();
    server.child.kill("SIGTERM");
    const { code } = await server.exited;
    assert.equal(code, 1);
    await people.next().catch(() => {});
  });

  it("exits 0 on SIGINT when idle, without waiting for the grace period", { timeout: 20_000 }, async () => {
    const server = await spawnServer(60_000);
    server.child.kill("SIGINT");
    assert.equal((await server.exited).code, 0);
  });
});
