// Max connection age (gRFC A9), keepalive pings and the client-ping policy,
// against the real server over loopback sockets.
import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { type Name, type Person, loadRouteGuide } from "../peers/grpc-js-server.js";
import { ConfigError, parseConfig } from "../src/config.js";
import { type ConnectionLifetime, defaultConnectionLifetime } from "../src/transport/connection-lifetime.js";
import { envelope, grpcStatus, nameBytes } from "./support/raw.js";
import { type RunningServer, startTestServer } from "./support/server.js";
import { startTcpProxy, type TcpProxy } from "./support/tcp-proxy.js";
import { type Certificate, throwawayCertificate } from "./support/tls.js";

const running: Array<RunningServer | TcpProxy> = [];
after(() => Promise.all(running.map((r) => r.close())));

async function serve(lifetime: Partial<ConnectionLifetime>): Promise<RunningServer> {
  const server = await startTestServer({ lifetime: { ...defaultConnectionLifetime(), ...lifetime } });
  running.push(server);
  return server;
}

async function proxyTo(server: RunningServer): Promise<TcpProxy> {
  const proxy = await startTcpProxy(server.port);
  running.push(proxy);
  return proxy;
}

/** Bounds a wait so that a broken server fails the test instead of hanging it; never a measurement. */
async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  for (const start = performance.now(); !condition(); await sleep(10)) {
    if (performance.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
  }
}

function grpcRequest(session: http2.ClientHttp2Session, path: string): http2.ClientHttp2Stream {
  const stream = session.request({ ":method": "POST", ":path": path, "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => {});
  return stream;
}

/** A grpc.health.v1 Watch of the server's overall status: a stream that stays open, answering nothing after the first status. */
async function openWatch(session: http2.ClientHttp2Session): Promise<http2.ClientHttp2Stream> {
  const watch = grpcRequest(session, "/grpc.health.v1.Health/Watch");
  watch.end(envelope(0, new Uint8Array()));
  await once(watch, "data");
  return watch;
}

describe("max connection age", () => {
  it("sends GOAWAY NO_ERROR max_age, serves the streams in flight for the grace, then closes the connection", { timeout: 20_000 }, async () => {
    const server = await serve({ maxAgeMs: 300, maxAgeGraceMs: 1_000 });
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const goaway = once(session, "goaway") as Promise<[number, number, Buffer]>;
    const watch = await openWatch(session);
    // A unary call whose request is still being sent when the GOAWAY comes.
    const call = grpcRequest(session, "/RouteGuide/GetPerson");
    const body = envelope(0, nameBytes("Alice"));
    call.write(body.subarray(0, 3));
    let trailers: http2.IncomingHttpHeaders = {};
    call.on("trailers", (t) => (trailers = t));
    const answer: Buffer[] = [];
    call.on("data", (chunk: Buffer) => answer.push(chunk));

    const [code, , data] = await goaway;
    assert.equal(code, http2.constants.NGHTTP2_NO_ERROR);
    assert.equal(data.toString(), "max_age");
    assert.equal(watch.closed, false, "an open stream survives the GOAWAY");
    call.end(body.subarray(3));
    await once(call, "close");
    assert.equal(grpcStatus({ status: 200, headers: {}, trailers, body: Buffer.concat(answer), rstCode: call.rstCode }), 0);
    assert.ok(Buffer.concat(answer).includes("New York"));
    // After the grace the server closes the connection, open stream and all.
    await once(session, "close");
    assert.equal(watch.closed, true);
  });

  it("rebalances a grpc-js channel: it reconnects after each GOAWAY and loses no call", { timeout: 20_000 }, async () => {
    const server = await serve({ maxAgeMs: 400, maxAgeGraceMs: 2_000 });
    const proxy = await proxyTo(server); // counts the connections
    const RouteGuide = loadRouteGuide();
    const client = new RouteGuide(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      GetPerson(name: Name, options: grpc.CallOptions, callback: grpc.requestCallback<Person>): void;
    };
    let ok = 0;
    const failures: unknown[] = [];
    const until = performance.now() + 2_500;
    // Each loop starts its next call as soon as the last one ends, so calls are always starting when a GOAWAY comes.
    const loop = async () => {
      while (performance.now() < until) {
        await new Promise<Person>((resolve, reject) =>
          // A deadline, so a lost call fails the test instead of hanging it.
          client.GetPerson({ name: "Alice" }, { deadline: Date.now() + 5_000 }, (err, person) => (err ? reject(err) : resolve(person!))),
        ).then(
          (person) => (person.name === "Alice" ? ok++ : failures.push(person)),
          (err: unknown) => failures.push(err),
        );
      }
    };
    await Promise.all([loop(), loop(), loop(), loop()]);
    client.close();
    assert.deepEqual(failures, []);
    assert.ok(ok > 0);
    // A new connection after every age: about 2.5 s / 0.4 s of them.
    assert.ok(proxy.connections >= 4, `${proxy.connections} connections: the client was not moved to new ones`);
  });

  it("answers the first HTTP/1.1 request after the age with connection: close", { timeout: 10_000 }, async () => {
    const server = await serve({ maxAgeMs: 200 });
    await assertHttp1ClosedAfterAge(net.connect(server.port, "127.0.0.1"));
  });
});

/** Two requests on one keep-alive connection, the second after the server's 200 ms age. */
async function assertHttp1ClosedAfterAge(socket: net.Socket): Promise<void> {
  let text = "";
  socket.on("data", (chunk) => (text += chunk));
  const closed = once(socket, "close");
  const request = `POST /RouteGuide/GetPerson HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{"name":"Alice"}`;
  socket.write(request);
  await waitFor(() => text.includes("New York"), "the first answer");
  assert.doesNotMatch(text, /connection: close/i);
  assert.match(text, /connection: keep-alive/i);
  await sleep(300); // past the age and its jitter
  socket.write(request);
  await closed;
  const second = text.slice(text.lastIndexOf("HTTP/1.1 "));
  assert.match(second, /^HTTP\/1\.1 200 OK/);
  assert.match(second, /connection: close/i);
  assert.match(second, /New York/);
}

describe("keepalive", () => {
  it("drops a peer that stopped answering behind a TCP proxy, and frees its open stream", { timeout: 20_000 }, async (t) => {
    const server = await serve({ keepaliveTimeMs: 200, keepaliveTimeoutMs: 300 });
    const proxy = await proxyTo(server);
    const session = http2.connect(`http://127.0.0.1:${proxy.port}`);
    session.on("error", () => {});
    await openWatch(session);
    assert.equal(server.health.subscriberCount, 1);
    // A healthy peer answers the server's pings (Node's client does) and keeps its stream.
    await sleep(1_000);
    assert.equal(server.health.subscriberCount, 1, "a peer that answers pings was dropped");
    proxy.freeze();
    const frozenAt = performance.now();
    await waitFor(() => server.health.subscriberCount === 0, "the server to drop the silent peer");
    const droppedAfterMs = performance.now() - frozenAt;
    session.destroy();
    // Reported, not asserted: keepalive time + timeout is 500 ms here.
    t.diagnostic(`silent peer dropped ${Math.round(droppedAfterMs)} ms after it froze`);
  });
});

describe("client pings", () => {
  it("a client that pings every second gets GOAWAY ENHANCE_YOUR_CALM too_many_pings", { timeout: 20_000 }, async () => {
    const server = await serve({}); // the default policy: a ping every 5 minutes
    const session = http2.connect(server.url);
    session.on("error", () => {});
    const goaway = once(session, "goaway") as Promise<[number, number, Buffer]>;
    const pinger = setInterval(() => {
      if (!session.closed && !session.destroyed) session.ping(() => {});
    }, 1_000);
    try {
      const [code, , data] = await goaway;
      assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.equal(data.toString(), "too_many_pings");
      // Closed with an error event (code 11), which once() would throw.
      await new Promise((resolve) => session.once("close", resolve));
    } finally {
      clearInterval(pinger);
    }
  });

  it("pings with calls in between are not strikes", { timeout: 20_000 }, async () => {
    const server = await serve({});
    const session = http2.connect(server.url);
    session.on("error", () => {});
    let goaway = false;
    session.on("goaway", () => (goaway = true));
    for (let round = 0; round < 6; round++) {
      await new Promise((resolve) => session.ping(resolve));
      const call = grpcRequest(session, "/RouteGuide/GetPerson");
      call.end(envelope(0, nameBytes("Bob")));
      call.resume();
      await once(call, "close");
    }
    await new Promise((resolve) => session.ping(resolve));
    assert.equal(goaway, false);
    assert.equal(session.closed, false);
    session.close();
  });
});

describe("over TLS", () => {
  let certificate: Certificate;
  let server: RunningServer;
  before(async () => {
    certificate = await throwawayCertificate();
    server = await startTestServer({
      tls: certificate,
      lifetime: { ...defaultConnectionLifetime(), maxAgeMs: 200 },
    });
  });
  after(async () => {
    await server.close();
    await certificate.remove();
  });

  it("closes HTTP/1.1 connections after the age", { timeout: 10_000 }, async () => {
    const socket = tls.connect({ port: server.port, host: "127.0.0.1", ALPNProtocols: ["http/1.1"], rejectUnauthorized: false });
    await once(socket, "secureConnect");
    assert.equal(socket.alpnProtocol, "http/1.1");
    await assertHttp1ClosedAfterAge(socket);
  });

  it("holds h2 clients to the ping policy (PING ACKs under TLS are not mistaken for data)", { timeout: 10_000 }, async () => {
    // Without the age of the server above, whose GOAWAY would come first.
    const policed = await startTestServer({ tls: certificate });
    running.push(policed);
    const session = http2.connect(policed.url, { rejectUnauthorized: false });
    session.on("error", () => {});
    const goaway = once(session, "goaway") as Promise<[number, number, Buffer]>;
    const pinger = setInterval(() => {
      if (!session.closed && !session.destroyed) session.ping(() => {});
    }, 50);
    try {
      const [code, , data] = await goaway;
      assert.equal(code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      assert.equal(data.toString(), "too_many_pings");
    } finally {
      clearInterval(pinger);
      session.destroy();
    }
  });
});

describe("flags", () => {
  it("default to grpc core's keepalive and no age, and parse as durations", () => {
    assert.deepEqual(parseConfig([]).lifetime, {
      maxAgeMs: 0,
      maxAgeGraceMs: 0,
      keepaliveTimeMs: 7_200_000,
      keepaliveTimeoutMs: 20_000,
      keepaliveMinTimeMs: 300_000,
    });
    const config = parseConfig([
      "--max-connection-age", "30m", "--max-connection-age-grace", "1m", "--keepalive-time", "1m",
      "--keepalive-timeout", "5s", "--keepalive-min-time", "10s", "--shutdown-delay", "5s",
    ]);
    assert.deepEqual(config.lifetime, {
      maxAgeMs: 1_800_000,
      maxAgeGraceMs: 60_000,
      keepaliveTimeMs: 60_000,
      keepaliveTimeoutMs: 5_000,
      keepaliveMinTimeMs: 10_000,
    });
    assert.equal(config.shutdownDelayMs, 5_000);
    assert.throws(() => parseConfig(["--keepalive-timeout", "0"]), ConfigError);
    assert.throws(() => parseConfig(["--max-connection-age", "soon"]), /--max-connection-age/);
  });
});
