// RouteGuide over gRPC through the engine (src/engine/grpc.ts) against
// Connect's own path: the same raw HTTP/2 requests go to a server with the
// engine and to one started with --no-fast-path, and must get the same
// answer, log line and metrics (test/support/differential.ts). A spy on
// Node's compat response proves which path answered each request (the
// engine answers on the HTTP/2 stream and never makes one), so an engine
// that silently handed everything to the request handler would fail here.
import assert from "node:assert/strict";
import { rm, mkdtemp, writeFile } from "node:fs/promises";
import http2 from "node:http2";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { brotliDecompressSync, gunzipSync, gzipSync } from "node:zlib";
import { create, fromBinary, toBinary, toJson } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { PersonSchema } from "../gen/person_pb.js";
import { NameSchema } from "../gen/route_guide_pb.js";
import type { Config } from "../src/config.js";
import { defaultLimits } from "../src/transport/limits.js";
import {
  assertSame as assertSameAnswers,
  exchange,
  type Observed as Answers,
  observeWith,
  type Pair,
  type Side,
  startPair as startServers,
  type Step,
} from "./support/differential.js";
import { envelope, nameBytes } from "./support/raw.js";
import { startLoggedServer } from "./support/server.js";
import { throwawayCertificate, type Certificate } from "./support/tls.js";

/** Counts, per server port, the responses Node's compat layer wrote: the request handler's, Connect's path among them. */
const compatResponses = new Map<number, number>();
const writeHead = http2.Http2ServerResponse.prototype.writeHead;
http2.Http2ServerResponse.prototype.writeHead = function (this: http2.Http2ServerResponse, ...args: unknown[]) {
  const port = this.stream.session?.socket.localPort;
  if (port !== undefined) compatResponses.set(port, (compatResponses.get(port) ?? 0) + 1);
  return (writeHead as (...a: unknown[]) => http2.Http2ServerResponse).apply(this, args);
} as typeof writeHead;

const compatCount = (side: Side) => compatResponses.get(side.server.port) ?? 0;

/** The engine's server and --no-fast-path's, configured alike, with RouteGuide only. */
const startPair = (overrides: Partial<Config> = {}): Promise<Pair> => startServers(overrides, { exercise: false });

const methods = { unary: "/RouteGuide/GetPerson", bidi: "/RouteGuide/GetPeople" } as const;
const grpcHeaders = { "content-type": "application/grpc", te: "trailers" };

interface Observed extends Answers {
  /** Responses written through Node's compat layer, i.e. by Connect's path. */
  compat: number;
}

/**
 * The differential check over HTTP/2, and that the engine's server answered
 * on the engine (or, for `delegated` requests, through Connect's path).
 */
async function assertSame(
  pair: Pair,
  { ":method": method = "POST", ":path": path, ...headers }: http2.OutgoingHttpHeaders,
  steps: Step[],
  {
    lines = 1,
    delegated = false,
    except,
  }: {
    lines?: number;
    delegated?: boolean;
    /** Metrics left out of the comparison (see the deadline tests). */
    except?: string;
  } = {},
): Promise<Observed> {
  const before = [compatCount(pair.engine), compatCount(pair.general)];
  const request = { http: "2" as const, method: String(method), path: String(path), headers: Object.entries(headers).map(([n, v]): [string, string] => [n, String(v)]), steps, lines };
  const engine = await assertSameAnswers(pair, request, except === undefined ? {} : { except });
  assert.equal(compatCount(pair.general) - before[1]!, 1, "the reference did not go through Connect's path");
  const compat = compatCount(pair.engine) - before[0]!;
  assert.equal(compat, delegated ? 1 : 0, delegated ? "expected the request handler to answer" : "expected the engine to answer");
  return { ...engine, compat };
}

/**
 * The engine ends a unary call at its deadline, before the late message
 * arrives; Connect's path reads it first, then the service sees its expired
 * signal. Same answer, but only Connect's path counts the message as received.
 */
const lateBody = { except: "grpc_server_msg_received_total" };

const alice = envelope(0, nameBytes("Alice"));
const manyNames = (count: number) => Buffer.concat(Array.from({ length: count }, () => alice));
const bob = envelope(0, nameBytes("Bob"));
const status = (o: Observed) => Number(o.reply.trailers?.["grpc-status"] ?? o.reply.headers["grpc-status"]);

describe("the gRPC fast path answers as Connect's path does", () => {
  let pair: Pair;
  // A small message limit, so "oversized" is a few bytes.
  before(async () => (pair = await startPair({ limits: { ...defaultLimits(), maxMessageBytes: 16 } })));
  after(() => pair.close());

  const unary = { ":path": methods.unary, ...grpcHeaders };
  const bidi = { ":path": methods.bidi, ...grpcHeaders };

  const unaryCases: Array<[string, http2.OutgoingHttpHeaders, Step[], Code | 0]> = [
    ["a known name", unary, [alice, "end"], 0],
    ["application/grpc+proto", { ...unary, "content-type": "application/grpc+proto" }, [alice, "end"], 0],
    ["grpc-encoding identity", { ...unary, "grpc-encoding": "identity" }, [alice, "end"], 0],
    ["grpc-js's grpc-accept-encoding (gzip negotiated, too small to compress)", { ...unary, "grpc-accept-encoding": "identity,deflate,gzip" }, [alice, "end"], 0],
    ["a message split across writes", unary, [alice.subarray(0, 3), { sleepMs: 20 }, alice.subarray(3), "end"], 0],
    ["an unknown name", unary, [envelope(0, nameBytes("Charlie")), "end"], Code.NotFound],
    ["an empty name", unary, [envelope(0, nameBytes("")), "end"], Code.InvalidArgument],
    ["bytes that are not a Name", unary, [envelope(0, Buffer.from([0xff, 0xff, 0xff])), "end"], Code.Internal],
    ["a truncated envelope", unary, [envelope(0, nameBytes("Alice"), 12), "end"], Code.InvalidArgument],
    ["a body shorter than an envelope header", unary, [Buffer.from([0, 0]), "end"], Code.InvalidArgument],
    ["an oversized message", unary, [envelope(0, nameBytes("Alice Wonderland Liddell")), "end"], Code.ResourceExhausted],
    ["an oversized length, before its bytes arrive", unary, [envelope(0, nameBytes("A"), 1_000_000)], Code.ResourceExhausted],
    ["the compressed flag without grpc-encoding", unary, [envelope(1, nameBytes("Alice")), "end"], Code.Internal],
    ["a reserved envelope flag", unary, [envelope(0x80, nameBytes("Alice")), "end"], Code.Internal],
    ["no message", unary, ["end"], Code.Unimplemented],
    ["two messages", unary, [alice, bob, "end"], Code.Unimplemented],
    ["two messages, the second invalid", unary, [alice, envelope(0, Buffer.from([0xff])), "end"], Code.Internal],
    ["a malformed grpc-timeout", { ...unary, "grpc-timeout": "soon" }, [alice, "end"], Code.InvalidArgument],
    ["a generous deadline", { ...unary, "grpc-timeout": "10S" }, [alice, "end"], 0],
  ];
  for (const [title, headers, steps, code] of unaryCases) {
    it(`GetPerson: ${title}`, async () => {
      const fast = await assertSame(pair, headers, steps);
      assert.equal(status(fast), code);
      assert.equal(fast.reply.headers["content-type"], "application/grpc+proto");
    });
  }

  it("GetPerson: a body that arrives after the deadline", async () => {
    const fast = await assertSame(pair, { ...unary, "grpc-timeout": "50m" }, [{ sleepMs: 300 }, alice, "end"], lateBody);
    assert.equal(status(fast), Code.DeadlineExceeded);
  });

  const bidiCases: Array<[string, http2.OutgoingHttpHeaders, Step[], Code | 0, number]> = [
    ["known and unknown names", bidi, [alice, envelope(0, nameBytes("Charlie")), bob, alice, "end"], 0, 3],
    ["many names in one write", bidi, [Buffer.concat(Array.from({ length: 500 }, (_, i) => (i % 2 ? alice : bob))), "end"], 0, 500],
    ["an empty request stream", bidi, ["end"], 0, 0],
    ["only unknown names", bidi, [envelope(0, nameBytes("Charlie")), "end"], 0, 0],
    ["an empty name after a known one", bidi, [alice, { replies: 1 }, envelope(0, nameBytes("")), "end"], Code.InvalidArgument, 1],
    ["an empty name in the same write as a known one", bidi, [Buffer.concat([alice, envelope(0, nameBytes(""))]), "end"], Code.InvalidArgument, 1],
    ["invalid bytes after a known name", bidi, [alice, { replies: 1 }, envelope(0, Buffer.from([0xff])), "end"], Code.Internal, 1],
    ["a truncated last envelope", bidi, [alice, { replies: 1 }, envelope(0, nameBytes("Bob"), 9), "end"], Code.InvalidArgument, 1],
    ["an oversized message after a known name", bidi, [alice, { replies: 1 }, envelope(0, nameBytes("Alice Wonderland Liddell"))], Code.ResourceExhausted, 1],
    ["a reserved flag in the same write as a known name", bidi, [Buffer.concat([alice, envelope(0x80, nameBytes("Bob"))]), "end"], Code.Internal, 0],
    ["the compressed flag without grpc-encoding", bidi, [alice, { replies: 1 }, envelope(1, nameBytes("Bob")), "end"], Code.Internal, 1],
    ["a malformed grpc-timeout", { ...bidi, "grpc-timeout": "1x" }, [alice, "end"], Code.InvalidArgument, 0],
    // ~1.2 MB of replies against 64 KiB flow-control windows: the server must wait for the reader, losing nothing.
    ["a client that reads its replies late", bidi, ["pause reading", manyNames(20_000), { sleepMs: 200 }, "resume reading", "end"], 0, 20_000],
    // Interleaving: each reply comes while the request stream is still open.
    ["replies before the next name is sent", bidi, [alice, { replies: 1 }, bob, { replies: 2 }, alice, { replies: 3 }, "end"], 0, 3],
    ["a deadline that passes while the stream is open", { ...bidi, "grpc-timeout": "150m" }, [alice, { replies: 1 }, { sleepMs: 400 }], Code.DeadlineExceeded, 1],
  ];
  for (const [title, headers, steps, code, replies] of bidiCases) {
    it(`GetPeople: ${title}`, async () => {
      const fast = await assertSame(pair, headers, steps);
      assert.equal(status(fast), code);
      assert.equal(fast.reply.messages!.length, replies);
    });
  }

  const delegatedCases: Array<[string, http2.OutgoingHttpHeaders, Step[], number]> = [
    ["a gzip-compressed request", { ...unary, "grpc-encoding": "gzip" }, [envelope(1, gzipSync(nameBytes("Alice"))), "end"], 1],
    ["an unknown request compression", { ...unary, "grpc-encoding": "snappy" }, [alice, "end"], 1],
    ["a content type with parameters", { ...unary, "content-type": "application/grpc;charset=utf-8" }, [alice, "end"], 1],
    ["gRPC-Web", { ...unary, "content-type": "application/grpc-web+proto" }, [alice, "end"], 1],
    ["Connect streaming", { ...bidi, "content-type": "application/connect+proto" }, [alice, "end"], 1],
    ["a browser's Origin", { ...unary, origin: "https://example.com" }, [alice, "end"], 1],
    ["a path with a query", { ...unary, ":path": `${methods.unary}?x=1` }, [alice, "end"], 1],
    ["an unknown method", { ...unary, ":path": "/RouteGuide/GetPlanet" }, [alice, "end"], 0],
    ["GET", { ...unary, ":method": "GET" }, ["end"], 1],
  ];
  it("answers gRPC with the JSON codec as Connect's path does", async () => {
    const fast = await assertSame(pair, { ...unary, "content-type": "application/grpc+json" }, [envelope(0, Buffer.from('{"name":"Alice"}')), "end"]);
    assert.equal(status(fast), 0);
    assert.equal(fast.reply.headers["content-type"], "application/grpc+json");
  });

  for (const [title, headers, steps, lines] of delegatedCases) {
    it(`leaves ${title} to the request handler (Connect's path), unread`, async () => {
      await assertSame(pair, headers, steps, { lines, delegated: true });
    });
  }

  it("logs fast calls as Connect's calls, and counts them on /metrics", async () => {
    const fast = await assertSame(pair, bidi, [alice, bob, envelope(0, nameBytes("Charlie")), "end"]);
    assert.deepEqual(fast.log, [
      {
        level: 30,
        procedure: "/RouteGuide/GetPeople",
        protocol: "grpc",
        http: "2.0",
        code: "ok",
        status: 200,
        received: 3,
        sent: 2,
        msg: "rpc",
        peer: "127.0.0.1:port",
      },
    ]);
    const labels = 'grpc_method="GetPeople",protocol="grpc"';
    const metric = (name: string, extra = "") =>
      Object.entries(fast.metrics).find(([key]) => key.startsWith(`${name}{`) && key.includes(labels) && key.includes(extra))?.[1];
    assert.equal(metric("grpc_server_started_total"), 1);
    assert.equal(metric("grpc_server_handled_total", 'grpc_code="OK"'), 1);
    assert.equal(metric("grpc_server_msg_received_total"), 3);
    assert.equal(metric("grpc_server_msg_sent_total"), 2);
    assert.equal(metric("grpc_server_handling_seconds_count"), 1);
  });
});

describe("the fast path with the default message limit", () => {
  let pair: Pair;
  before(async () => (pair = await startPair()));
  after(() => pair.close());

  // Whatever the answer to a name its error message echoes, both paths must give the same.
  it("GetPerson: an unknown name of 100 KB", async () => {
    await assertSame(pair, { ":path": methods.unary, ...grpcHeaders }, [envelope(0, nameBytes("x".repeat(100_000))), "end"]);
  });
});

describe("the fast path with the server's maximum deadline", () => {
  let pair: Pair;
  before(async () => (pair = await startPair({ limits: { ...defaultLimits(), maxDeadlineMs: 150 } })));
  after(() => pair.close());

  it("cuts a stream without grpc-timeout at the maximum", async () => {
    const fast = await assertSame(pair, { ":path": methods.bidi, ...grpcHeaders }, [alice, { replies: 1 }, { sleepMs: 400 }]);
    assert.equal(status(fast), Code.DeadlineExceeded);
  });

  it("cuts a longer grpc-timeout at the maximum", async () => {
    const fast = await assertSame(pair, { ":path": methods.unary, ...grpcHeaders, "grpc-timeout": "1H" }, [{ sleepMs: 400 }, alice, "end"], lateBody);
    assert.equal(status(fast), Code.DeadlineExceeded);
  });

  it("keeps a shorter grpc-timeout", async () => {
    const fast = await assertSame(pair, { ":path": methods.unary, ...grpcHeaders, "grpc-timeout": "100m" }, [alice, "end"]);
    assert.equal(status(fast), 0);
  });
});

describe("the fast path with compressed responses and a list of CORS origins", () => {
  // Someone with more than 1 KiB of hobbies: big enough for Connect to compress.
  const bigPerson = create(PersonSchema, {
    name: "Big",
    age: 40,
    hobbies: Array.from({ length: 120 }, (_, i) => `hobby number ${i}`),
  });
  let folder: string;
  let pair: Pair;
  before(async () => {
    folder = await mkdtemp(join(tmpdir(), "fast-path-"));
    const dataFile = join(folder, "people.json");
    await writeFile(dataFile, JSON.stringify([toJson(PersonSchema, bigPerson), { name: "Small", age: 1 }]));
    pair = await startPair({ dataFile, corsOrigins: ["https://example.com"] });
  });
  after(async () => {
    await pair.close();
    await rm(folder, { recursive: true });
  });

  const big = envelope(0, toBinary(NameSchema, create(NameSchema, { name: "Big" })));
  const small = envelope(0, nameBytes("Small"));
  const unary = { ":path": methods.unary, ...grpcHeaders };

  for (const accept of ["gzip", "br", "identity,deflate,gzip", "deflate, br"]) {
    it(`compresses a large Person as Connect does for grpc-accept-encoding: ${accept}`, async () => {
      const fast = await assertSame(pair, { ...unary, "grpc-accept-encoding": accept }, [big, "end"]);
      assert.equal(status(fast), 0);
      const [message] = fast.reply.messages!;
      assert.equal(message!.flags, 1);
      const bytes = Buffer.from(message!.start, "latin1");
      const inflated = fast.reply.headers["grpc-encoding"] === "br" ? brotliDecompressSync(bytes) : gunzipSync(bytes);
      assert.equal(fromBinary(PersonSchema, inflated).hobbies.length, 120);
    });
  }

  it("sends small and large replies of one stream each as Connect does", async () => {
    const bidi = { ":path": methods.bidi, ...grpcHeaders, "grpc-accept-encoding": "gzip" };
    const fast = await assertSame(pair, bidi, [small, big, small, "end"]);
    assert.deepEqual(fast.reply.messages!.map((m) => m.flags), [0, 1, 0]);
    // With a list of origins CORS would add "Vary: Origin", but a POST without Origin skips it on both paths.
    assert.equal(fast.reply.headers.vary, undefined);
  });
});

describe("the engine over TLS", () => {
  let certificate: Certificate;
  let pair: Pair;
  before(async () => {
    certificate = await throwawayCertificate();
    pair = await startPair({ tls: certificate });
  });
  after(async () => {
    await pair.close();
    await certificate.remove();
  });

  it("answers GetPerson and GetPeople as Connect's path does", async () => {
    assert.match(pair.engine.server.url, /^https:/);
    assert.equal(status(await assertSame(pair, { ":path": methods.unary, ...grpcHeaders }, [alice, "end"])), 0);
    const fast = await assertSame(pair, { ":path": methods.bidi, ...grpcHeaders }, [alice, { replies: 1 }, bob, "end"]);
    assert.equal(fast.reply.messages!.length, 2);
  });
});

describe("the fast path during shutdown", () => {
  for (const fastPath of [true, false]) {
    it(`ends an open GetPeople stream with UNAVAILABLE after the grace (${fastPath ? "fast path" : "Connect's path"})`, async () => {
      const side = await startLoggedServer({ fastPath });
      const compatBefore = compatCount(side);
      let closing: Promise<void> | undefined;
      const reply = await exchange(side.server.url, {
        http: "2",
        path: methods.bidi,
        headers: grpcHeaders,
        steps: [
          alice,
          { replies: 1 }, // in flight and answered: now stop the server
          { then: () => (closing = side.server.close(100)) },
          { sleepMs: 5_000 },
        ],
      });
      await closing;
      assert.equal(reply.messages!.length, 1);
      assert.equal(reply.trailers?.["grpc-status"], String(Code.Unavailable));
      assert.equal(reply.trailers?.["grpc-message"], encodeURIComponent("the server is shutting down"));
      assert.equal(compatCount(side) - compatBefore, fastPath ? 0 : 1);
    });
  }
});

/**
 * Cancellation as gRPC clients in Go, C++ or Java send it: RST_STREAM alone.
 * (Node's client always ends its side first, which makes the reset race
 * that end.) Raw frames on a socket, so the reset is exactly that.
 */
describe("a client's RST_STREAM", () => {
  let pair: Pair;
  before(async () => (pair = await startPair()));
  after(() => pair.close());

  for (const [title, path, body, replies] of [
    ["stops a GetPeople stream after its first reply", methods.bidi, alice, 1],
    ["stops a GetPerson call whose body is not complete", methods.unary, alice.subarray(0, 4), 0],
  ] as const) {
    it(`${title}; the connection serves the next call`, async () => {
      const results = [];
      for (const side of [pair.engine, pair.general]) {
        const compatBefore = compatCount(side);
        const { reply: outcome, log: lines, metrics } = await observeWith(side, 2, () => resetThenCall(side.server.port, path, body, replies));
        results.push({ outcome, lines, metrics, compat: compatCount(side) - compatBefore });
      }
      const [fast, connect] = results;
      // What the client saw: the same replies before its reset, then a whole answer to the next call.
      assert.deepEqual(fast!.outcome, connect!.outcome);
      assert.deepEqual(fast!.outcome, { repliesBeforeReset: replies, nextCall: { dataFrames: 1, endedWithHeaders: true } });
      assert.equal(fast!.compat, 0);
      assert.ok(connect!.compat >= 1);
      // Connect's path sees the body end (Node's compat layer ends it on a reset) and records
      // whatever it then answers, to nobody; the fast path records what happened: CANCELLED.
      const [canceled, next] = fast!.lines;
      assert.deepEqual([canceled!.procedure, canceled!.code], [path, "canceled"]);
      if (replies > 0) assert.deepEqual([canceled!.received, canceled!.sent], [1, 1]);
      assert.deepEqual([next!.procedure, next!.code], [methods.unary, "ok"]);
      const handled = (method: string, code: string) =>
        Object.entries(fast!.metrics).find(
          ([key]) => key.startsWith("grpc_server_handled_total") && key.includes(`grpc_method="${method}"`) && key.includes(`grpc_code="${code}"`),
        )?.[1];
      assert.equal(handled(path.split("/")[2]!, "CANCELLED"), 1);
      assert.equal(handled("GetPerson", "OK"), 1);
    });
  }
});

/**
 * On one raw HTTP/2 connection: a call to `path` with `body` (request side
 * left open), RST_STREAM(CANCEL) once `replies` reply frames arrived, then
 * GetPerson("Bob") on a new stream. Reports what came back.
 */
function resetThenCall(
  port: number,
  path: string,
  body: Buffer,
  replies: number,
): Promise<{ repliesBeforeReset: number; nextCall: { dataFrames: number; endedWithHeaders: boolean } }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => socket.destroy(new Error("no answer to the next call within 10 s")), 10_000);
    const frame = (type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)) => {
      const head = Buffer.alloc(9);
      head.writeUIntBE(payload.length, 0, 3);
      head[3] = type;
      head[4] = flags;
      head.writeUInt32BE(streamId, 5);
      return Buffer.concat([head, payload]);
    };
    const literal = (text: string) => Buffer.concat([Buffer.from([text.length]), Buffer.from(text, "latin1")]);
    // HPACK without a dynamic table: static :method POST (3) and :scheme http (6), the rest literal.
    const headers = (requestPath: string) =>
      Buffer.concat([
        Buffer.from([0x83, 0x86, 0x04]),
        literal(requestPath),
        Buffer.from([0x01]),
        literal(`127.0.0.1:${port}`),
        Buffer.from([0x00]),
        literal("content-type"),
        literal("application/grpc"),
        Buffer.from([0x00]),
        literal("te"),
        literal("trailers"),
      ]);
    const [DATA, HEADERS, RST_STREAM, SETTINGS] = [0, 1, 3, 4];
    const [END_STREAM, END_HEADERS, ACK] = [0x1, 0x4, 0x1];
    let repliesBeforeReset = 0;
    let reset = false;
    const nextCall = { dataFrames: 0, endedWithHeaders: false };
    const sendReset = () => {
      reset = true;
      socket.write(frame(RST_STREAM, 0, 1, Buffer.from([0, 0, 0, http2.constants.NGHTTP2_CANCEL])));
      socket.write(frame(HEADERS, END_HEADERS, 3, headers(methods.unary)));
      socket.write(frame(DATA, END_STREAM, 3, bob));
    };
    let received = Buffer.alloc(0);
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      while (received.length >= 9 && received.length >= 9 + received.readUIntBE(0, 3)) {
        const length = received.readUIntBE(0, 3);
        const [type, flags, streamId] = [received[3]!, received[4]!, received.readUInt32BE(5) & 0x7fffffff];
        received = received.subarray(9 + length);
        if (type === SETTINGS && !(flags & ACK)) socket.write(frame(SETTINGS, ACK, 0));
        if (streamId === 1 && type === DATA && !reset && ++repliesBeforeReset === replies) sendReset();
        if (streamId === 3 && type === DATA) nextCall.dataFrames++;
        if (streamId === 3 && type === HEADERS && flags & END_STREAM) {
          nextCall.endedWithHeaders = true;
          clearTimeout(timer);
          socket.end();
          resolve({ repliesBeforeReset, nextCall });
        }
      }
    });
    socket.on("error", reject);
    socket.write(Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"));
    socket.write(frame(SETTINGS, 0, 0));
    socket.write(frame(HEADERS, END_HEADERS, 1, headers(path)));
    socket.write(frame(DATA, 0, 1, body));
    // A call without replies to wait for is reset once the server has surely read its body.
    if (replies === 0) setTimeout(sendReset, 100);
  });
}
