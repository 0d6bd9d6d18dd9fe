import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import net from "node:net";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import tls from "node:tls";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import { ConfigError, parseConfig } from "../src/config.js";
import { defaultLimits, type Limits } from "../src/transport/limits.js";
import { startTestServer, type RunningServer } from "./support/server.js";
import { throwawayCertificate, type Certificate } from "./support/tls.js";
import {
  connectEndStream,
  envelope,
  frameFlag,
  frameType,
  grpcHeaders,
  grpcStatus,
  grpcWebStatus,
  h1Raw,
  h2Frame,
  h2Request,
  hpack,
  nameBytes,
  RawH2,
  type Frame,
} from "./support/raw.js";

const getPerson = "/RouteGuide/GetPerson";
const getPeople = "/RouteGuide/GetPeople";
const MiB = 1024 * 1024;
const grpcHeadersH2 = { "content-type": "application/grpc", te: "trailers" };
const connectStream = { "content-type": "application/connect+proto" };
const grpcWeb = { "content-type": "application/grpc-web+proto" };

/**
 * Name{name: "Bob"} followed by an unknown bytes field (number 15, which
 * parsers skip), so that the message is `size` bytes long in all.
 */
function bobOfSize(size: number): Buffer {
  const bob = nameBytes("Bob");
  const padding = size - bob.length - 1 - 4; // tag byte, 4-byte varint length
  const length = Buffer.from([(padding & 0x7f) | 0x80, ((padding >> 7) & 0x7f) | 0x80, ((padding >> 14) & 0x7f) | 0x80, padding >> 21]);
  return Buffer.concat([bob, Buffer.from([(15 << 3) | 2]), length, Buffer.alloc(padding)]);
}

const overLimit = bobOfSize(4 * MiB + 1);
const atLimit = bobOfSize(4 * MiB);

/**
 * 1 GiB of zeros in about 1 MiB: 64 gzip members of 16 MiB each, one after
 * the other (gunzip reads them as one stream). Built from one small member,
 * so the test never holds the inflated GiB itself.
 */
const gzipBomb = Buffer.concat(Array.from({ length: 64 }, () => gzipMember16MiB()));
function gzipMember16MiB(): Buffer {
  return (gzipMember16MiB.cached ??= gzipSync(Buffer.alloc(16 * MiB)));
}
gzipMember16MiB.cached = undefined as Buffer | undefined;

const connectStreamCode = (body: Buffer) => {
  const end = connectEndStream(body);
  return end?.error ? codeFromString(end.error.code) : end && 0;
};

function limitsWith(overrides: Partial<Limits>): Limits {
  return { ...defaultLimits(), ...overrides };
}

/** Resolves true if `socket` closes within `boundMs` (a generous bound, far above the timeout under test). */
function closesWithin(socket: net.Socket, boundMs = 5_000): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), boundMs);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

function connectTo(port: number): Promise<net.Socket> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => resolve(socket));
    socket.on("error", () => {});
  });
}

/** Sends `head`, then `piece` every 50 ms for as long as the connection lasts: the server must answer 408 and close it. */
async function assertDripGets408(port: number, head: string, piece: string): Promise<void> {
  const socket = await connectTo(port);
  socket.write(head);
  const drip = setInterval(() => !socket.destroyed && socket.write(piece), 50);
  let text = "";
  socket.on("data", (d) => (text += d));
  try {
    assert.ok(await closesWithin(socket));
    assert.match(text, /^HTTP\/1\.1 408/);
  } finally {
    clearInterval(drip);
  }
}

/** Sends a PING and waits for its ACK: every frame sent before it has been processed. */
async function roundTrip(c: RawH2, id: number): Promise<void> {
  const payload = Buffer.alloc(8);
  payload.writeUInt32BE(id);
  c.send(h2Frame(frameType.ping, 0, 0, payload));
  await c.next((f) => f.type === frameType.ping && (f.flags & frameFlag.ack) !== 0 && f.payload.readUInt32BE(0) === id);
}

const rstCode = (code: number) => {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return payload;
};
const isGoaway = (f: Frame) => f.type === frameType.goaway;

describe("with the default limits", () => {
  let server: RunningServer;
  before(async () => (server = await startTestServer()));
  after(() => server.close());

  describe("a request message over 4 MiB gets RESOURCE_EXHAUSTED", () => {
    it("over gRPC", async () => {
      const reply = await h2Request(server.url, { ":path": getPerson, ...grpcHeadersH2 }, [envelope(0, overLimit)]);
      assert.equal(grpcStatus(reply), Code.ResourceExhausted);
    });

    it("over gRPC, on a stream", async () => {
      const reply = await h2Request(server.url, { ":path": getPeople, ...grpcHeadersH2 }, [envelope(0, overLimit)]);
      assert.equal(grpcStatus(reply), Code.ResourceExhausted);
    });

    it("over gRPC-Web on HTTP/2", async () => {
      const reply = await h2Request(server.url, { ":path": getPerson, ...grpcWeb }, [envelope(0, overLimit)]);
      assert.equal(grpcWebStatus(reply), Code.ResourceExhausted);
    });

    it("over gRPC-Web on HTTP/1.1", async () => {
      const body = envelope(0, overLimit);
      const reply = await h1Raw(server.port, Buffer.concat([
        Buffer.from(`POST ${getPerson} HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: ${body.length}\r\n\r\n`),
        body,
      ]));
      assert.equal(grpcWebStatus(reply), Code.ResourceExhausted);
    });

    it("over Connect streaming", async () => {
      const reply = await h2Request(server.url, { ":path": getPeople, ...connectStream }, [envelope(0, overLimit)]);
      assert.equal(connectStreamCode(reply.body), Code.ResourceExhausted);
    });

    it("over Connect unary on HTTP/2", async () => {
      const reply = await h2Request(server.url, { ":path": getPerson, "content-type": "application/proto" }, [overLimit]);
      assert.equal(reply.status, 429);
      assert.equal(JSON.parse(reply.body.toString()).code, "resource_exhausted");
    });

    it("over Connect unary on HTTP/1.1, with a content-length", async () => {
      const reply = await h1Raw(server.port, Buffer.concat([
        Buffer.from(`POST ${getPerson} HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Length: ${overLimit.length}\r\n\r\n`),
        overLimit,
      ]));
      assert.equal(reply.status, 429);
      assert.equal(JSON.parse(reply.body.toString()).code, "resource_exhausted");
    });

    it("over Connect unary on HTTP/1.1, chunked (no length known in advance)", async () => {
      const reply = await h1Raw(server.port, Buffer.concat([
        Buffer.from(`POST ${getPerson} HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nTransfer-Encoding: chunked\r\n\r\n`),
        Buffer.from(`${overLimit.length.toString(16)}\r\n`),
        overLimit,
        Buffer.from("\r\n0\r\n\r\n"),
      ]));
      assert.equal(reply.status, 429, "an answer, not a dropped connection");
      assert.equal(JSON.parse(reply.body.toString()).code, "resource_exhausted");
    });

    it("over Connect unary on HTTP/1.1, chunked and gzipped", async () => {
      // Over 4 MiB before inflating; connect-node stops reading at the limit.
      const body = randomBytes(4 * MiB + 1);
      const reply = await h1Raw(server.port, Buffer.concat([
        Buffer.from(`POST ${getPerson} HTTP/1.1\r\nHost: x\r\nContent-Type: application/proto\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n`),
        Buffer.from(`${body.length.toString(16)}\r\n`),
        body,
        Buffer.from("\r\n0\r\n\r\n"),
      ]));
      assert.equal(reply.status, 429, "an answer, not a dropped connection");
    });

    it("over gRPC-Web on HTTP/1.1, chunked", async () => {
      const body = envelope(0, overLimit);
      const reply = await h1Raw(server.port, Buffer.concat([
        Buffer.from(`POST ${getPerson} HTTP/1.1\r\nHost: x\r\nContent-Type: application/grpc-web+proto\r\nTransfer-Encoding: chunked\r\n\r\n`),
        Buffer.from(`${body.length.toString(16)}\r\n`),
        body,
        Buffer.from("\r\n0\r\n\r\n"),
      ]));
      assert.equal(grpcWebStatus(reply), Code.ResourceExhausted);
    });

    it("in a Connect GET's compressed message parameter", async () => {
      const message = gzipSync(Buffer.alloc(8 * MiB)).toString("base64url"); // ~11 KB of URL
      const reply = await h2Request(server.url, {
        ":method": "GET",
        ":path": `${getPerson}?encoding=proto&compression=gzip&base64=1&message=${message}`,
      });
      assert.equal(reply.status, 429);
      assert.equal(JSON.parse(reply.body.toString()).code, "resource_exhausted");
    });

    it("but a message of exactly 4 MiB is read and answered", async () => {
      const reply = await h2Request(server.url, { ":path": getPerson, ...grpcHeadersH2 }, [envelope(0, atLimit)]);
      assert.equal(grpcStatus(reply), 0);
      assert.ok(reply.body.includes("Los Angeles"));
    });
  });

  describe("a gzip bomb (1 GiB inflated, 1 MiB sent) is refused without inflating it", () => {
    // The server runs in this process: its memory is this process's memory.
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const bombs: Array<[string, () => Promise<number | undefined>]> = [
      ["gRPC", async () => grpcStatus(await h2Request(server.url, { ":path": getPerson, ...grpcHeadersH2, "grpc-encoding": "gzip" }, [envelope(1, gzipBomb)]))],
      ["gRPC stream", async () => grpcStatus(await h2Request(server.url, { ":path": getPeople, ...grpcHeadersH2, "grpc-encoding": "gzip" }, [envelope(1, gzipBomb)]))],
      ["gRPC-Web", async () => grpcWebStatus(await h2Request(server.url, { ":path": getPerson, ...grpcWeb, "grpc-encoding": "gzip" }, [envelope(1, gzipBomb)]))],
      ["Connect streaming", async () => connectStreamCode((await h2Request(server.url, { ":path": getPeople, ...connectStream, "connect-content-encoding": "gzip" }, [envelope(1, gzipBomb)])).body)],
      ["Connect unary", async () => {
        const reply = await h2Request(server.url, { ":path": getPerson, "content-type": "application/proto", "content-encoding": "gzip" }, [gzipBomb]);
        return codeFromString(JSON.parse(reply.body.toString()).code);
      }],
    ];
    for (const [protocol, send] of bombs) {
      it(`over ${protocol}`, async () => {
        gc();
        const before = process.memoryUsage.rss();
        let peak = before;
        const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 5);
        const code = await send().finally(() => clearInterval(sampler));
        const grewMiB = (peak - before) / MiB;
        console.log(`gzip bomb over ${protocol}: RSS ${Math.round(before / MiB)} MiB before, peak +${grewMiB.toFixed(1)} MiB`);
        // Inflating it would add 1024 MiB; reading the 1 MiB body and inflating 4 MiB add a few.
        assert.ok(grewMiB < 128, `RSS grew by ${grewMiB.toFixed(0)} MiB`);
        assert.equal(code, Code.ResourceExhausted);
      });
    }
  });

  describe("header blocks over 16 KiB", () => {
    it("are refused over HTTP/1.1 with 431", async () => {
      const reply = await h1Raw(server.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ${"a".repeat(17 * 1024)}\r\n\r\n`);
      assert.equal(reply.status, 431);
    });

    it("reset the stream over HTTP/2 (ENHANCE_YOUR_CALM)", async () => {
      const c = new RawH2(server.port);
      try {
        await roundTrip(c, 1); // the server's SETTINGS (with its header limit) are acknowledged by now
        const block = hpack(grpcHeaders(getPerson, [["x-padding", "a".repeat(17 * 1024)]]));
        // Over the 16 KiB frame size: HEADERS, then CONTINUATION.
        c.send(
          h2Frame(frameType.headers, frameFlag.endStream, 1, block.subarray(0, 16_000)),
          h2Frame(frameType.continuation, frameFlag.endHeaders, 1, block.subarray(16_000)),
        );
        const reset = await c.next((f) => f.type === frameType.rstStream && f.streamId === 1);
        assert.equal(reset?.payload.readUInt32BE(0), 11);
      } finally {
        c.destroy();
      }
    });

    it("so a Connect GET's message parameter is bounded by them too", async () => {
      const message = bobOfSize(20 * 1024).toString("base64url");
      const reply = await h1Raw(server.port, `GET ${getPerson}?encoding=proto&base64=1&message=${message} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.equal(reply.status, 431);
    });
  });

  describe("HTTP/2 flood protections", () => {
    it("a client opening more than 100 concurrent streams loses the connection", async () => {
      const c = new RawH2(server.port);
      try {
        await roundTrip(c, 1);
        for (let id = 1; id <= 199; id += 2) c.send(h2Frame(frameType.headers, frameFlag.endHeaders, id, hpack(grpcHeaders(getPeople))));
        await roundTrip(c, 2);
        assert.equal(c.frames.find(isGoaway), undefined, "100 open streams are fine");
        c.send(h2Frame(frameType.headers, frameFlag.endHeaders, 201, hpack(grpcHeaders(getPeople))));
        const goaway = await c.next(isGoaway);
        assert.equal(goaway?.payload.readUInt32BE(4), 1, "GOAWAY PROTOCOL_ERROR");
      } finally {
        c.destroy();
      }
    });

    it("Rapid Reset: a client resetting thousands of streams gets GOAWAY", async () => {
      const c = new RawH2(server.port);
      try {
        await roundTrip(c, 1);
        const frames: Buffer[] = [];
        for (let i = 0; i < 2_000; i++) {
          const id = 1 + 2 * i;
          frames.push(
            h2Frame(frameType.headers, frameFlag.endHeaders, id, hpack(grpcHeaders(getPeople))),
            h2Frame(frameType.rstStream, 0, id, rstCode(8)), // CANCEL
          );
        }
        c.send(...frames);
        const goaway = await c.next(isGoaway);
        assert.ok(goaway, "GOAWAY");
        assert.ok(await c.closesWithin(), "then the connection closes");
      } finally {
        c.destroy();
      }
    });

    it("a client sending streams of invalid frames loses the connection", async () => {
      const c = new RawH2(server.port);
      try {
        await roundTrip(c, 1);
        // Upper-case header names are malformed in HTTP/2 (RFC 9113 §8.2.1): a stream error each.
        const invalid = hpack([...grpcHeaders(getPerson), ["X-Upper", "case"]]);
        let id = 1;
        for (let batch = 0; batch < 30 && !c.isClosed; batch++) {
          const frames: Buffer[] = [];
          for (let i = 0; i < 50; i++, id += 2) frames.push(h2Frame(frameType.headers, frameFlag.endHeaders | frameFlag.endStream, id, invalid));
          c.send(...frames);
          await roundTrip(c, 2 + batch).catch(() => {}); // fails once the connection is gone
        }
        assert.ok(c.isClosed, "closed after about 1000 invalid frames");
        assert.ok(id > 1000, `closed only after ${id >> 1} streams`);
      } finally {
        c.destroy();
      }
    });
  });

  describe("deadlines", () => {
    it("grpc-timeout ends an open bidi stream with DEADLINE_EXCEEDED and releases the stream", async () => {
      // The request side stays open: the server must end the call, and then the stream.
      const reply = await h2Request(server.url, { ":path": getPeople, ...grpcHeadersH2, "grpc-timeout": "200m" }, [envelope(0, nameBytes("Alice"))], { end: false });
      assert.equal(grpcStatus(reply), Code.DeadlineExceeded);
      assert.ok(reply.body.length > 0, "Alice came back before the deadline");
      assert.equal(reply.rstCode, 0, "RST_STREAM(NO_ERROR) after the complete response (RFC 9113 §8.1)");
    });

    it("connect-timeout-ms ends an open Connect stream with deadline_exceeded", async () => {
      const reply = await h2Request(server.url, { ":path": getPeople, ...connectStream, "connect-timeout-ms": "200" }, [envelope(0, nameBytes("Alice"))], { end: false });
      assert.equal(connectStreamCode(reply.body), Code.DeadlineExceeded);
      assert.equal(reply.rstCode, 0);
    });

    it("gRPC-Web calls honour grpc-timeout too", async () => {
      const reply = await h2Request(server.url, { ":path": getPeople, ...grpcWeb, "grpc-timeout": "200m" }, [envelope(0, nameBytes("Alice"))], { end: false });
      assert.equal(grpcWebStatus(reply), Code.DeadlineExceeded);
    });

    it("a deadline longer than a Node timer can wait (99999999H) does not fire at once", async () => {
      // Connect arms setTimeout with it, which fires after 1 ms when over 2^31-1 ms.
      const reply = await h2Request(server.url, { ":path": getPeople, ...grpcHeadersH2, "grpc-timeout": "99999999H" }, [
        envelope(0, nameBytes("Alice")),
      ], { end: false, timeoutMs: 300 }).catch(() => "still open");
      assert.equal(reply, "still open");
    });

    it("without a maximum, a call without a deadline is not cut", async () => {
      const reply = await h2Request(server.url, { ":path": getPerson, ...grpcHeadersH2 }, [envelope(0, nameBytes("Bob"))]);
      assert.equal(grpcStatus(reply), 0);
    });
  });
});

describe("with a 300 ms maximum deadline", () => {
  let server: RunningServer;
  before(async () => (server = await startTestServer({ limits: limitsWith({ maxDeadlineMs: 300 }) })));
  after(() => server.close());

  it("a stream without a deadline gets the maximum", async () => {
    const reply = await h2Request(server.url, { ":path": getPeople, ...grpcHeadersH2 }, [envelope(0, nameBytes("Alice"))], { end: false });
    assert.equal(grpcStatus(reply), Code.DeadlineExceeded);
  });

  it("a stream asking for an hour gets the maximum", async () => {
    const reply = await h2Request(server.url, { ":path": getPeople, ...connectStream, "connect-timeout-ms": "3600000" }, [envelope(0, nameBytes("Alice"))], { end: false });
    assert.equal(connectStreamCode(reply.body), Code.DeadlineExceeded);
  });

  it("a unary call asking for an hour is served, not rejected (Connect's maxTimeoutMs would reject it)", async () => {
    const reply = await h2Request(server.url, { ":path": getPerson, ...grpcHeadersH2, "grpc-timeout": "1H" }, [envelope(0, nameBytes("Bob"))]);
    assert.equal(grpcStatus(reply), 0);
  });
});

describe("with short timeouts, slow and idle clients are cut off", () => {
  // The request timeout stays at its default (60 s), so that only the header timeout can cut these off.
  const limits = limitsWith({ headersTimeoutMs: 300, keepAliveTimeoutMs: 300, idleTimeoutMs: 400 });
  let plain: RunningServer;
  let secure: RunningServer;
  let slowBody: RunningServer;
  let certificate: Certificate;
  before(async () => {
    plain = await startTestServer({ limits });
    slowBody = await startTestServer({ limits: limitsWith({ headersTimeoutMs: 300, requestTimeoutMs: 600 }) });
    certificate = await throwawayCertificate();
    secure = await startTestServer({ limits, tls: certificate });
  });
  after(async () => {
    await Promise.all([plain.close(), secure.close(), slowBody.close()]);
    await certificate.remove();
  });

  it("a connection that never says anything", async () => {
    assert.ok(await closesWithin(await connectTo(plain.port)));
  });

  it("a connection dripping the HTTP/2 preface a byte at a time", async () => {
    const socket = await connectTo(plain.port);
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    let sent = 0;
    const drip = setInterval(() => sent < preface.length && !socket.destroyed && socket.write(preface.subarray(sent, ++sent)), 100);
    try {
      assert.ok(await closesWithin(socket));
    } finally {
      clearInterval(drip);
    }
  });

  it("an HTTP/1.1 client sending half its headers (slowloris) gets 408", async () => {
    const reply = await h1Raw(plain.port, "GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    assert.equal(reply.status, 408);
  });

  it("an HTTP/1.1 client dripping headers forever gets 408", async () => {
    await assertDripGets408(plain.port, "GET / HTTP/1.1\r\nHost: x\r\n", "X-Drip: 1\r\n");
  });

  it("an HTTP/1.1 client sending its body too slowly gets 408", async () => {
    const head = `POST ${getPerson} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{`;
    await assertDripGets408(slowBody.port, head, " ");
  });

  it("an idle HTTP/1.1 keep-alive connection is closed", async () => {
    const socket = await connectTo(plain.port);
    socket.write(`GET ${getPerson}?encoding=json&message=%7B%22name%22%3A%22Bob%22%7D HTTP/1.1\r\nHost: x\r\n\r\n`);
    let text = "";
    socket.on("data", (d) => (text += d));
    assert.ok(await closesWithin(socket));
    assert.match(text, /^HTTP\/1\.1 200[\s\S]*Los Angeles/);
  });

  it("an HTTP/2 connection without streams gets GOAWAY and is closed", async () => {
    const c = new RawH2(plain.port);
    try {
      assert.ok(await c.closesWithin());
      assert.ok(c.frames.some(isGoaway));
    } finally {
      c.destroy();
    }
  });

  it("an HTTP/2 client stopping halfway through a header block is closed", async () => {
    const c = new RawH2(plain.port);
    try {
      await roundTrip(c, 1);
      // HEADERS without END_HEADERS: nghttp2 waits for a CONTINUATION that never comes.
      c.send(h2Frame(frameType.headers, 0, 1, hpack(grpcHeaders(getPeople)).subarray(0, 20)));
      assert.ok(await c.closesWithin());
    } finally {
      c.destroy();
    }
  });

  it("an HTTP/2 connection stays while a stream is open", async () => {
    const reply = await h2Request(plain.url, { ":path": getPeople, ...grpcHeadersH2, "grpc-timeout": "900m" }, [envelope(0, nameBytes("Alice"))], { end: false });
    // Twice the idle timeout: the stream ran to its deadline on an open connection.
    assert.equal(grpcStatus(reply), Code.DeadlineExceeded);
  });

  it("a TLS connection that never completes its handshake", async () => {
    assert.ok(await closesWithin(await connectTo(secure.port)));
  });

  it("a TLS HTTP/1.1 client sending half its headers gets 408", async () => {
    const socket = tls.connect({ port: secure.port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("secureConnect", resolve));
    socket.write("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    let text = "";
    socket.on("data", (d) => (text += d));
    assert.ok(await closesWithin(socket));
    assert.match(text, /^HTTP\/1\.1 408/);
  });

  it("an idle TLS HTTP/2 connection gets GOAWAY and is closed", async () => {
    const socket = tls.connect({ port: secure.port, host: "127.0.0.1", rejectUnauthorized: false, ALPNProtocols: ["h2"] });
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("secureConnect", resolve));
    socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), h2Frame(frameType.settings, 0, 0)]));
    const received: Buffer[] = [];
    socket.on("data", (d: Buffer) => received.push(d));
    assert.ok(await closesWithin(socket));
    // The server's frames: SETTINGS, SETTINGS ACK, then GOAWAY (type 7).
    const bytes = Buffer.concat(received);
    let goaway = false;
    for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) goaway ||= bytes[at + 3] === frameType.goaway;
    assert.ok(goaway);
  });
});

describe("an HTTP/2 session over its memory limit", () => {
  // One person whose reply is 200 KB; the client opens the flow-control
  // windows wide and stops reading, so the replies pile up in the server.
  let server: RunningServer;
  before(async () => {
    const dir = await mkdtemp(join(tmpdir(), "routeguide-memory-"));
    const dataFile = join(dir, "people.json");
    await writeFile(dataFile, JSON.stringify([{ name: "Big", hobbies: ["x".repeat(200_000)] }]));
    server = await startTestServer({ dataFile, limits: limitsWith({ maxSessionMemoryBytes: MiB }) });
  });
  after(() => server.close());

  it("has new streams refused (ENHANCE_YOUR_CALM) until it drains", async () => {
    const c = new RawH2(server.port, { settings: [[0x4, 2 ** 31 - 1]] }); // SETTINGS_INITIAL_WINDOW_SIZE
    try {
      await roundTrip(c, 1);
      const increment = Buffer.alloc(4);
      increment.writeUInt32BE(2 ** 31 - 1 - 65_535);
      c.send(h2Frame(frameType.windowUpdate, 0, 0, increment));
      c.pause();
      for (let id = 1; id < 160; id += 2) {
        c.send(h2Frame(frameType.headers, frameFlag.endHeaders, id, hpack(grpcHeaders(getPeople))), h2Frame(frameType.data, 0, id, envelope(0, nameBytes("Big"))));
        await sleep(5);
      }
      c.resume();
      const refused = await c.next((f) => f.type === frameType.rstStream && f.payload.readUInt32BE(0) === 11);
      assert.ok(refused, "a stream refused with ENHANCE_YOUR_CALM");
    } finally {
      c.destroy();
    }
  });
});

describe("the limit flags", () => {
  it("default to the documented values", () => {
    const config = parseConfig([]);
    assert.deepEqual(config.limits, {
      maxMessageBytes: 4 * MiB,
      maxHeaderBytes: 16 * 1024,
      maxConcurrentStreams: 100,
      maxSessionMemoryBytes: 10 * MiB,
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 60_000,
      keepAliveTimeoutMs: 5_000,
      idleTimeoutMs: 300_000,
      maxDeadlineMs: 0,
    });
    assert.equal(config.shutdownGraceMs, 5_000);
  });

  it("read sizes and durations with their units", () => {
    const config = parseConfig([
      "--max-message-size", "1MiB", "--max-header-size", "8192", "--max-concurrent-streams", "50",
      "--max-session-memory", "2MiB", "--headers-timeout", "2s", "--request-timeout", "30", "--keep-alive-timeout", "500ms",
      "--idle-timeout", "1m", "--max-deadline", "1.5s", "--shutdown-grace", "250ms",
    ]);
    assert.deepEqual(config.limits, {
      maxMessageBytes: MiB,
      maxHeaderBytes: 8192,
      maxConcurrentStreams: 50,
      maxSessionMemoryBytes: 2 * MiB,
      headersTimeoutMs: 2_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 500,
      idleTimeoutMs: 60_000,
      maxDeadlineMs: 1_500,
    });
    assert.equal(config.shutdownGraceMs, 250);
  });

  for (const args of [
    ["--max-message-size", "4MB"],
    ["--max-message-size", "0"],
    ["--max-concurrent-streams", "0"],
    ["--idle-timeout", "soon"],
    ["--shutdown-grace", "-1s"],
    ["--headers-timeout", "2m", "--request-timeout", "1m"],
  ]) {
    it(`refuse ${args.join(" ")}`, () => {
      assert.throws(() => parseConfig(args), ConfigError);
    });
  }
});
