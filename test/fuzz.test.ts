import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { gzipSync } from "node:zlib";
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import fc from "fast-check";
import { PersonSchema } from "../gen/person_pb.js";
import { createRouteGuideClient, protocols } from "../src/client/client.js";
import { startTestServer, type RunningServer } from "./support/server.js";
import { mutation } from "./support/mutation.js";
import { envelope, h1Raw, nameBytes } from "./support/raw.js";

// Thousands of random and mutated requests across the three protocols. The
// property: every one gets a well-formed answer of its protocol (a result or
// an error with a valid code), the server never crashes (it runs in this
// process), and its memory settles afterwards.

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

let server: RunningServer;
before(async () => (server = await startTestServer()));
after(() => server.close());

const rpcPaths = ["/RouteGuide/GetPerson", "/RouteGuide/GetPeople"];

const contentTypes = [
  "application/grpc",
  "application/grpc+proto",
  "application/grpc+json",
  "application/grpc-web",
  "application/grpc-web+proto",
  "application/grpc-web+json",
  "application/grpc-web-text",
  "application/connect+proto",
  "application/connect+json",
  "application/proto",
  "application/json",
  "application/json; charset=utf-8",
  "text/plain",
];

const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/);
// Visible ASCII: what any HTTP client can put in a header value.
const headerValue = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?$/);

const requestHeaders = fc.record(
  {
    "content-type": fc.oneof(fc.constantFrom(...contentTypes), headerValue),
    "grpc-encoding": fc.constantFrom("gzip", "br", "identity", "snappy", "GZIP"),
    "connect-content-encoding": fc.constantFrom("gzip", "br", "identity", "zstd"),
    "content-encoding": fc.constantFrom("gzip", "br", "identity", "deflate"),
    "grpc-timeout": fc.oneof(fc.constantFrom("1S", "100m", "0n", "99999999H", "1x", "-1S"), headerValue),
    "connect-timeout-ms": fc.oneof(fc.constantFrom("1000", "0", "9999999999", "-5", "1.5"), headerValue),
    "connect-protocol-version": fc.constantFrom("1", "2", ""),
    "grpc-accept-encoding": fc.constantFrom("gzip", "br", "snappy,gzip"),
  },
  { requiredKeys: ["content-type"] },
);

const extraHeaders = fc.dictionary(
  token.filter((n) => !["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "host", "content-length", "expect"].includes(n)),
  headerValue,
  { maxKeys: 3 },
);

const validName = fc.oneof(fc.constantFrom("Alice", "Bob", "", "Charlie"), fc.string({ maxLength: 40 }));

/** Bodies that start valid, or random, then get mutated. */
const body: fc.Arbitrary<Buffer> = fc.oneof(
  fc.array(validName, { maxLength: 4 }).map((names) => Buffer.concat(names.map((n) => envelope(0, nameBytes(n))))),
  validName.map((n) => Buffer.from(nameBytes(n))),
  validName.map((n) => Buffer.from(JSON.stringify({ name: n }))),
  validName.map((n) => envelope(0, Buffer.from(JSON.stringify({ name: n })))),
  validName.map((n) => envelope(1, gzipSync(nameBytes(n)))),
  fc.json().map((j) => Buffer.from(j)),
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.uint8Array({ maxLength: 32 })).map(([flags, length, data]) =>
    envelope(flags, data, length),
  ),
).chain((b) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.constant(b) },
    { weight: 2, arbitrary: mutation(b) },
  ),
);

const request = fc.record({
  path: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...rpcPaths) }, { weight: 1, arbitrary: token.map((t) => `/RouteGuide/${t}`) }),
  method: fc.oneof({ weight: 8, arbitrary: fc.constant("POST") }, { weight: 1, arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "OPTIONS") }),
  query: fc.option(
    fc.record({ encoding: fc.constantFrom("proto", "json", "xml"), base64: fc.constantFrom("1", "0"), compression: fc.constantFrom("gzip", "identity", "lz4"), message: headerValue }, { requiredKeys: [] }),
    { freq: 4 },
  ),
  headers: requestHeaders,
  extra: extraHeaders,
  body,
  // HTTP/1.x only: the version, and whether a Host header is sent (HTTP/1.0 may omit it).
  http1: fc.record({ version: fc.constantFrom("1.1", "1.1", "1.0"), host: fc.boolean() }),
});

type FuzzRequest = typeof request extends fc.Arbitrary<infer T> ? T : never;

function url(req: FuzzRequest): string {
  if (!req.query) return req.path;
  return `${req.path}?${new URLSearchParams(req.query as Record<string, string>)}`;
}

/** What makes an answer "a valid protocol error or a valid result". Returns the problem, if any. */
function problemWith(method: string, status: number, headers: Record<string, unknown>, trailers: Record<string, unknown>, responseBody: Buffer): string | undefined {
  if (!(status >= 200 && status <= 599)) return `status ${status}`;
  if (method === "OPTIONS" && status === 204) return undefined; // a CORS preflight
  const contentType = String(headers["content-type"] ?? "");
  const validGrpcCode = (v: unknown) => /^(0|[1-9]|1[0-6])$/.test(String(v));
  const frames = envelopes(responseBody);
  if (contentType.startsWith("application/grpc-web")) {
    if (status !== 200) return `gRPC-Web status ${status}`;
    const trailerFrame = frames?.find((f) => f.flags & 0x80);
    const code = trailerFrame ? /grpc-status:\s*(\d+)/i.exec(trailerFrame.data.toString("latin1"))?.[1] : headers["grpc-status"];
    return frames && validGrpcCode(code) ? undefined : `gRPC-Web without a valid status: ${code}`;
  }
  if (contentType.startsWith("application/grpc")) {
    if (status !== 200) return `gRPC status ${status}`;
    const code = trailers["grpc-status"] ?? headers["grpc-status"];
    if (!validGrpcCode(code)) return `gRPC without a valid grpc-status: ${code}`;
    if (code === "0" && contentType === "application/grpc+proto") {
      for (const f of frames ?? []) fromBinary(PersonSchema, f.data);
    }
    return frames ? undefined : "gRPC body is not whole envelopes";
  }
  if (contentType.startsWith("application/connect+")) {
    const end = frames?.find((f) => f.flags & 0x02);
    if (status !== 200 || !end) return `Connect stream without an end-of-stream message (status ${status})`;
    const error = JSON.parse(end.data.toString()).error;
    return error === undefined || codeFromString(error.code) !== undefined ? undefined : `unknown Connect code ${error.code}`;
  }
  if (status === 200 && contentType === "application/proto") {
    fromBinary(PersonSchema, responseBody);
    return undefined;
  }
  if (status === 200 && contentType === "application/json") {
    fromJsonString(PersonSchema, responseBody.toString());
    return undefined;
  }
  if (contentType === "application/json") {
    const code = JSON.parse(responseBody.toString()).code;
    return codeFromString(code) !== undefined ? undefined : `unknown Connect code ${code}`;
  }
  // Plain HTTP answers: 404 (unknown path), 405, 415, 505 (streams over HTTP/1.1), 4xx from Node.
  return status >= 400 ? undefined : `unexpected ${status} ${contentType}`;
}

function envelopes(data: Buffer): Array<{ flags: number; data: Buffer }> | undefined {
  const out = [];
  let at = 0;
  while (at + 5 <= data.length) {
    const length = data.readUInt32BE(at + 1);
    if (at + 5 + length > data.length) return undefined;
    out.push({ flags: data[at]!, data: data.subarray(at + 5, at + 5 + length) });
    at += 5 + length;
  }
  return at === data.length ? out : undefined;
}

let session: http2.ClientHttp2Session | undefined;
/** One shared session, as a real client would have; renewed if the server ends it. */
function h2Session(): http2.ClientHttp2Session {
  if (!session || session.closed || session.destroyed) {
    session = http2.connect(server.url);
    session.on("error", () => {});
  }
  return session;
}

function sendH2(req: FuzzRequest): Promise<string | undefined> {
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = h2Session().request({ ...req.extra, ...req.headers, ":method": req.method, ":path": url(req) });
    } catch (err) {
      // node:http2 refused to send it (its own header checks): nothing reached the server.
      resolve(undefined);
      return;
    }
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      stream.close();
      resolve("no answer within 10 s");
    }, 10_000);
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => {});
    stream.on("close", () => {
      clearTimeout(timer);
      if (headers[":status"] === undefined) {
        resolve(`reset without an answer (code ${stream.rstCode})`);
        return;
      }
      try {
        resolve(problemWith(req.method, Number(headers[":status"]), headers, trailers, Buffer.concat(chunks)));
      } catch (err) {
        resolve(`unparseable answer: ${String(err)}`);
      }
    });
    stream.end(req.method === "GET" ? undefined : req.body);
  });
}

async function sendH1(req: FuzzRequest): Promise<string | undefined> {
  const head = [`${req.method} ${url(req)} HTTP/${req.http1.version}`, "Connection: close", `Content-Length: ${req.body.length}`];
  if (req.http1.host) head.push("Host: 127.0.0.1");
  for (const [name, value] of Object.entries({ ...req.extra, ...req.headers })) head.push(`${name}: ${value}`);
  const reply = await h1Raw(server.port, Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`), req.body]));
  if (reply.status === 0) return "connection closed without an answer";
  try {
    return problemWith(req.method, reply.status, reply.headers, reply.trailers, reply.body);
  } catch (err) {
    return `unparseable answer: ${String(err)}`;
  }
}

// FUZZ_RUNS_H2 / FUZZ_RUNS_H1 raise the counts for a longer hunt.
const h2Runs = Number(process.env.FUZZ_RUNS_H2 ?? 4_000);
const h1Runs = Number(process.env.FUZZ_RUNS_H1 ?? 1_500);

describe("fuzzing every protocol", () => {
  let heapBefore = 0;

  it(`answers ${h2Runs} random and mutated HTTP/2 requests with valid results or errors`, async () => {
    // Warm up and settle before measuring memory.
    await createRouteGuideClient({ baseUrl: server.url, protocol: "grpc" }).getPerson({ name: "Alice" });
    gc();
    heapBefore = process.memoryUsage().heapUsed;
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        const problem = await sendH2(req);
        assert.equal(problem, undefined, `${req.method} ${url(req)} ${JSON.stringify(req.headers)} ${req.body.toString("hex")}`);
      }),
      { numRuns: h2Runs },
    );
  });

  it(`answers ${h1Runs} random and mutated HTTP/1.x requests with valid results or errors`, async () => {
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        const problem = await sendH1(req);
        assert.equal(problem, undefined, `${req.method} ${url(req)} ${JSON.stringify(req.headers)} ${req.body.toString("hex")}`);
      }),
      { numRuns: h1Runs },
    );
  });

  it("still serves every protocol, and its memory settled", async () => {
    for (const protocol of protocols) {
      const alice = await createRouteGuideClient({ baseUrl: server.url, protocol }).getPerson({ name: "Alice" });
      assert.equal(alice.age, 30);
    }
    session?.destroy();
    // Let closed connections and streams be collected, then measure.
    await new Promise((resolve) => setTimeout(resolve, 200));
    gc();
    const grewMiB = (process.memoryUsage().heapUsed - heapBefore) / 2 ** 20;
    console.log(`fuzz: heap ${(heapBefore / 2 ** 20).toFixed(1)} MiB before, ${grewMiB >= 0 ? "+" : ""}${grewMiB.toFixed(1)} MiB after ${h2Runs + h1Runs} requests`);
    assert.ok(grewMiB < 16, `heap grew by ${grewMiB.toFixed(1)} MiB`);
  });
});
