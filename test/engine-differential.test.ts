// The proof that the protocol engine answers as connect-node does: every
// case of the test-only ExerciseService (test/proto/exercise/v1/) goes, as
// raw bytes, to a server with the engine and to one with --no-fast-path, in
// every protocol × codec × HTTP version the protocol allows, and both must
// answer, log and count it alike (test/support/differential.ts). Each case
// also checks the status itself, so both paths being wrong the same way
// fails too.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { Code } from "@connectrpc/connect";
import { defaultLimits } from "../src/transport/limits.js";
import { assertSame, observe, outcome, type Observed, type Pair, type RawRequest, startPair, type Step } from "./support/differential.js";
import { rejectHeader } from "./support/exercise-service.js";
import {
  call,
  type CallOptions,
  type ExerciseInit,
  exercisePath,
  frame,
  getVariants,
  messageBytes,
  type MethodName,
  streamVariants,
  unaryVariants,
  type Variant,
} from "./support/exercise-requests.js";
import { envelope } from "./support/raw.js";

const limit = defaultLimits().maxMessageBytes;

/** Padding that makes the encoded request `size` bytes in the variant's codec. */
function paddingFor(v: Variant, size: number): Uint8Array {
  // proto: tag, a 4-byte length varint, the bytes; JSON: {"padding":"<base64>"}.
  return new Uint8Array(v.codec === "proto" ? size - 5 : Math.floor((size - 14) / 4) * 3);
}

/**
 * For the cases of megabytes: the limit applies to encoded bytes whatever
 * the codec, so JSON (a third larger, and slow to encode) goes over HTTP/2 only.
 */
const large = (v: Variant) => v.codec === "proto" || v.http === "2";

interface Case {
  title: string;
  method: MethodName;
  messages: (v: Variant) => ExerciseInit[];
  options?: CallOptions;
  /** The client's steps, given the request's frames (default: all of them, then the end). */
  steps?: (frames: Step[]) => Step[];
  /** The status both must end with, by Connect's name; cancelled calls by their log line. */
  code: string | ((v: Variant) => string);
  /** Which variants the case applies to (default all). */
  when?: (v: Variant) => boolean;
}

const details = [{ reason: "EXERCISE", metadata: { who: "differential" } }];
/** One character over the exercise's `label` rule (string.max_len = 16). */
const tooLong = "x".repeat(17);
const echo: ExerciseInit = { echoHeaders: ["x-echo", "x-absent"], responseHeaders: { "x-set": "header value" }, responseTrailers: { "x-trailer": "trailer value" } };
const echoHeaders: Array<[string, string]> = [["x-echo", "echoed"]];
const h2Only = (v: Variant) => v.http === "2";
const byCodec = (proto: string, json: string) => (v: Variant) => (v.codec === "proto" ? proto : json);
const expected = (code: string | ((v: Variant) => string), v: Variant) => (typeof code === "string" ? code : code(v));
const notGet = (v: Variant) => v.protocol !== "connect-get";

/** Unary calls: Unary, or Query for Connect GET. */
const unaryCases: Case[] = [
  { title: "an empty request gets an empty response", method: "Unary", messages: () => [{}], code: "ok" },
  { title: "echoes request headers, sets response headers and trailers", method: "Unary", messages: () => [echo], options: { headers: echoHeaders }, code: "ok" },
  {
    title: "an error with details",
    method: "Unary",
    messages: () => [{ ...echo, failure: { code: Code.FailedPrecondition, message: "not now", details } }],
    options: { headers: echoHeaders },
    code: "failed_precondition",
  },
  // Connect, like gRPC, answers an error that is not a status with UNKNOWN.
  { title: "a plain Error is unknown", method: "Unary", messages: () => [{ failure: { code: 0, message: "a bug" } }], code: "unknown" },
  { title: "a delay within the deadline", method: "Unary", messages: () => [{ delayMs: 20 }], options: { deadlineMs: 60_000 }, code: "ok" },
  { title: "a delay past the deadline", method: "Unary", messages: () => [{ delayMs: 10_000 }], options: { deadlineMs: 100 }, code: "deadline_exceeded" },
  { title: "a gzip request", method: "Unary", messages: () => [{ ...echo, padding: new Uint8Array(2000) }], options: { gzip: true }, code: "ok" },
  { title: "a gzip response, when accepted", method: "Unary", messages: () => [{ payloadBytes: 4000 }], options: { acceptGzip: true }, code: "ok" },
  { title: "an error, gzip accepted", method: "Unary", messages: () => [{ failure: { code: Code.NotFound, message: "x".repeat(2000), details } }], options: { acceptGzip: true }, code: "not_found" },
  { title: "a response near the size limit", method: "Unary", messages: () => [{ payloadBytes: limit - 1024 }], code: "ok", when: large },
  { title: "a request near the size limit", method: "Unary", messages: (v) => [{ padding: paddingFor(v, limit - 64) }], code: "ok", when: (v) => notGet(v) && large(v) },
  { title: "a request over the size limit", method: "Unary", messages: (v) => [{ padding: paddingFor(v, limit + 64) }], code: "resource_exhausted", when: (v) => notGet(v) && large(v) },
  {
    title: "a gzip request over the size limit once inflated",
    method: "Unary",
    messages: () => [{ padding: new Uint8Array(limit + 1024) }],
    options: { gzip: true },
    code: "resource_exhausted",
    when: notGet,
  },
  { title: "the rejecting interceptor", method: "Unary", messages: () => [{}], options: { headers: [[rejectHeader, "no entry"]] }, code: "permission_denied" },
  // The server's validation (buf.validate rules): the interceptor on connect-node's path, the engine's own step.
  { title: "a request that breaks a validation rule", method: "Unary", messages: () => [{ label: tooLong }], code: "invalid_argument" },
  {
    title: "a request that breaks a validation rule, behind the rejecting interceptor",
    method: "Unary",
    messages: () => [{ label: tooLong }],
    options: { headers: [[rejectHeader, "no entry"]] },
    code: "permission_denied",
  },
  {
    title: "a body sent in pieces, the last after a pause",
    method: "Unary",
    messages: () => [{ padding: new Uint8Array(100) }],
    steps: (frames) => {
      const bytes = frames[0] as Uint8Array;
      return [bytes.subarray(0, 3), { sleepMs: 20 }, bytes.subarray(3), "end"];
    },
    code: "ok",
    when: notGet,
  },
  // An empty body is the empty message in proto, and not JSON at all.
  { title: "no message", method: "Unary", messages: () => [], code: byCodec("ok", "invalid_argument"), when: (v) => v.protocol === "connect" },
  { title: "no message", method: "Unary", messages: () => [], code: "unimplemented", when: (v) => v.streaming },
  { title: "two messages", method: "Unary", messages: () => [{}, {}], code: "unimplemented", when: (v) => v.streaming },
  {
    title: "bytes that are not a message",
    method: "Unary",
    messages: () => [],
    steps: () => [Buffer.from([0xff, 0xff, 0xff]), "end"],
    code: byCodec("internal", "invalid_argument"),
    when: (v) => v.protocol === "connect",
  },
  {
    title: "an envelope of bytes that are not a message",
    method: "Unary",
    messages: () => [],
    steps: () => [envelope(0, Buffer.from([0xff, 0xff, 0xff])), "end"],
    code: byCodec("internal", "invalid_argument"),
    when: (v) => v.streaming,
  },
  {
    title: "a truncated envelope",
    method: "Unary",
    messages: () => [],
    steps: () => [envelope(0, Buffer.from([0x08]), 12), "end"],
    code: "invalid_argument",
    when: (v) => v.streaming,
  },
  {
    title: "the compressed flag without an encoding",
    method: "Unary",
    messages: () => [],
    steps: () => [envelope(1, Buffer.from([0x08, 0x01])), "end"],
    code: "internal",
    when: (v) => v.streaming,
  },
  { title: "a malformed deadline", method: "Unary", messages: () => [{}], options: { headers: [["grpc-timeout", "soon"], ["connect-timeout-ms", "soon"]] }, code: "invalid_argument" },
];

/** Connect GET only: what the query says. */
const getCases: Array<{ title: string; path: (v: Variant) => string; headers?: Array<[string, string]>; code: string | ((v: Variant) => string) }> = [
  { title: "a method with side effects", path: (v) => call(v, "Unary", [{}]).path, code: "http 405" },
  { title: "no message parameter", path: (v) => `${exercisePath("Query")}?encoding=${v.contentType}`, code: byCodec("ok", "invalid_argument") },
  { title: "an unknown encoding", path: () => `${exercisePath("Query")}?encoding=xml&message=x`, code: "http 415" },
  {
    title: "a compression it does not know",
    path: (v) => `${exercisePath("Query")}?encoding=${v.contentType}&compression=lz4&base64=1&message=${messageBytes(v, {}).toString("base64url")}`,
    code: "unimplemented",
  },
  {
    title: "a gzip query message over the limit once inflated",
    path: (v) => `${exercisePath("Query")}?encoding=${v.contentType}&compression=gzip&base64=1&message=${gzipSync(messageBytes(v, { padding: new Uint8Array(limit + 1024) })).toString("base64url")}`,
    code: "resource_exhausted",
  },
];

/** Streaming calls. */
const streamCases: Case[] = [
  { title: "server stream: three responses", method: "ServerStream", messages: () => [{ ...echo, responses: 3 }], options: { headers: echoHeaders }, code: "ok" },
  { title: "server stream: an empty request, no responses", method: "ServerStream", messages: () => [{}], code: "ok" },
  {
    title: "server stream: fails before the first response",
    method: "ServerStream",
    messages: () => [{ ...echo, responses: 3, failure: { code: Code.Aborted, message: "before", details } }],
    options: { headers: echoHeaders },
    code: "aborted",
  },
  {
    title: "server stream: fails after two responses",
    method: "ServerStream",
    messages: () => [{ ...echo, responses: 3, failure: { code: Code.Unavailable, message: "after two", details, after: 2 } }],
    code: "unavailable",
  },
  // connect-node answers a plain Error from a stream with INTERNAL, from a unary method with UNKNOWN.
  { title: "server stream: a plain Error after one response", method: "ServerStream", messages: () => [{ responses: 3, failure: { code: 0, message: "a bug", after: 1 } }], code: "internal" },
  { title: "server stream: gzip both ways", method: "ServerStream", messages: () => [{ responses: 2, payloadBytes: 4000, padding: new Uint8Array(2000) }], options: { gzip: true, acceptGzip: true }, code: "ok" },
  { title: "server stream: a response near the size limit", method: "ServerStream", messages: () => [{ responses: 1, payloadBytes: limit - 1024 }], code: "ok", when: large },
  { title: "server stream: a request over the size limit", method: "ServerStream", messages: (v) => [{ padding: paddingFor(v, limit + 64) }], code: "resource_exhausted", when: large },
  { title: "server stream: a delay past the deadline", method: "ServerStream", messages: () => [{ responses: 1, delayMs: 10_000 }], options: { deadlineMs: 100 }, code: "deadline_exceeded" },
  { title: "server stream: the rejecting interceptor", method: "ServerStream", messages: () => [{ responses: 1 }], options: { headers: [[rejectHeader, "no"]] }, code: "permission_denied" },
  { title: "server stream: two requests", method: "ServerStream", messages: () => [{}, {}], code: "unimplemented", when: (v) => v.protocol !== "connect" },
  {
    title: "server stream: cancelled while the handler waits",
    method: "ServerStream",
    messages: () => [{ responses: 1, delayMs: 10_000 }],
    steps: (frames) => [...frames, "end", { sleepMs: 100 }, "cancel"],
    code: "canceled",
    when: h2Only,
  },
  { title: "client stream: three requests", method: "ClientStream", messages: () => [{ ...echo }, {}, {}], options: { headers: echoHeaders }, code: "ok", when: h2Only },
  { title: "client stream: no requests", method: "ClientStream", messages: () => [], code: "ok", when: h2Only },
  {
    title: "client stream: fails after the second request",
    method: "ClientStream",
    messages: () => [{ failure: { code: Code.OutOfRange, message: "enough", details, after: 2 } }, {}, {}],
    code: "out_of_range",
    when: h2Only,
  },
  { title: "client stream: gzip requests", method: "ClientStream", messages: () => [{ padding: new Uint8Array(2000) }, { padding: new Uint8Array(2000) }], options: { gzip: true }, code: "ok", when: h2Only },
  { title: "client stream: the second request over the size limit", method: "ClientStream", messages: (v) => [{}, { padding: paddingFor(v, limit + 64) }], code: "resource_exhausted", when: h2Only },
  {
    title: "client stream: the deadline while the client holds its stream open",
    method: "ClientStream",
    messages: () => [{}],
    options: { deadlineMs: 150, open: true },
    code: "deadline_exceeded",
    when: h2Only,
  },
  {
    title: "bidi: replies as requests come",
    method: "Bidi",
    messages: () => [{ ...echo, responses: 1 }, { responses: 2 }],
    options: { headers: echoHeaders },
    steps: ([first, second]) => [first!, { replies: 1 }, second!, { replies: 3 }, "end"],
    code: "ok",
    when: h2Only,
  },
  { title: "bidi: empty requests, no responses", method: "Bidi", messages: () => [{}, {}], code: "ok", when: h2Only },
  {
    title: "bidi: fails after the first response",
    method: "Bidi",
    messages: () => [{ responses: 2, failure: { code: Code.ResourceExhausted, message: "one is enough", details, after: 1 } }],
    code: "resource_exhausted",
    when: h2Only,
  },
  {
    title: "bidi: cancelled (RST_STREAM) after the first response",
    method: "Bidi",
    messages: () => [{ responses: 1 }],
    steps: (frames) => [...frames, { replies: 1 }, "cancel"],
    code: "canceled",
    when: h2Only,
  },
  {
    title: "bidi: the deadline while the handler waits for the next request",
    method: "Bidi",
    messages: () => [{ responses: 1 }],
    options: { deadlineMs: 200, open: true },
    code: "deadline_exceeded",
    when: h2Only,
  },
  { title: "server stream: a request that breaks a validation rule", method: "ServerStream", messages: () => [{ responses: 2, label: tooLong }], code: "invalid_argument" },
  { title: "client stream: the second request breaks a validation rule", method: "ClientStream", messages: () => [{}, { label: tooLong }, {}], code: "invalid_argument", when: h2Only },
  {
    title: "bidi: the second request breaks a validation rule, after the first's responses",
    method: "Bidi",
    messages: () => [{ responses: 2 }, { responses: 1, label: tooLong }, { responses: 1 }],
    code: "invalid_argument",
    when: h2Only,
  },
  { title: "bidi: the rejecting interceptor", method: "Bidi", messages: () => [{ responses: 1 }], options: { headers: [[rejectHeader, "no"]] }, code: "permission_denied", when: h2Only },
  { title: "bidi over HTTP/1.1 is refused", method: "Bidi", messages: () => [{ responses: 1 }], code: "unimplemented", when: (v) => v.http === "1.1" },
  { title: "client stream over HTTP/1.1 is refused", method: "ClientStream", messages: () => [{}], code: "unimplemented", when: (v) => v.http === "1.1" },
];

function requestFor(v: Variant, c: Case): RawRequest {
  const messages = c.messages(v);
  const request = call(v, c.method, messages, c.options);
  if (c.steps === undefined) return request;
  return { ...request, steps: c.steps(messages.map((m) => frame(v, messageBytes(v, m), c.options?.gzip))) };
}

/** The status of the call: as the client read it, or (when it cancelled) as the server logged it. */
function codeOf(observed: Observed): string {
  return observed.reply.ending === "cancelled" ? String(observed.log[0]?.code) : outcome(observed.reply).code;
}

describe("the engine answers as connect-node does", () => {
  let pair: Pair;
  before(async () => (pair = await startPair()));
  after(() => pair.close());

  for (const v of [...unaryVariants, ...getVariants]) {
    describe(`unary, ${v.name}`, () => {
      for (const c of unaryCases.filter((c) => c.when?.(v) ?? true)) {
        it(c.title, async () => {
          const method = v.protocol === "connect-get" ? "Query" : c.method;
          const observed = await assertSame(pair, requestFor(v, { ...c, method }));
          assert.equal(codeOf(observed), expected(c.code, v));
        });
      }
      if (v.protocol === "connect-get") {
        for (const c of getCases) {
          it(c.title, async () => {
            const observed = await assertSame(pair, { http: v.http, method: "GET", path: c.path(v), headers: c.headers ?? [] });
            assert.equal(codeOf(observed), expected(c.code, v));
          });
        }
      }
    });
  }

  for (const v of streamVariants) {
    describe(`streams, ${v.name}`, () => {
      for (const c of streamCases.filter((c) => c.when?.(v) ?? true)) {
        it(c.title, async () => {
          const observed = await assertSame(pair, requestFor(v, c));
          assert.equal(codeOf(observed), expected(c.code, v));
        });
      }
    });
  }

  describe("requests outside the service", () => {
    for (const v of [...unaryVariants.filter((v) => v.codec === "proto")]) {
      it(`an unknown method, ${v.name}`, async () => {
        const request = call(v, "Unary", [{}]);
        const observed = await assertSame(pair, { ...request, path: "/exercise.v1.ExerciseService/Missing", lines: 0 });
        assert.ok(["unimplemented", "http 404"].includes(codeOf(observed)), codeOf(observed));
      });
    }
    for (const http of ["1.1", "2"] as const) {
      // connect-node does not speak gRPC-Web's base64 text variant.
      it(`gRPC-Web text over HTTP/${http}`, async () => {
        const body = Buffer.from(envelope(0, messageBytes(unaryVariants[0]!, {})).toString("base64"));
        const observed = await assertSame(pair, { http, path: exercisePath("Unary"), headers: { "content-type": "application/grpc-web-text" }, steps: [body, "end"] });
        assert.equal(codeOf(observed), "http 415");
      });
    }
  });
});

/**
 * Where connect-node 2.2.0 is wrong (README, "Limits and shutdown"): these
 * assert the correct answer on both servers, each on its own, then that they
 * agree. The engine answers so itself; src/http/request-guard.ts fixes the
 * general path.
 */

/** Both servers give `expected` (a code, and the message when given), and then agree on everything else. */
async function assertBothCorrect(pair: Pair, request: RawRequest, expected: { code: string; message?: string }): Promise<void> {
  const [engine, general] = await Promise.all([observe(pair.engine, request), observe(pair.general, request)]);
  for (const [side, observed] of [["engine", engine], ["general path", general]] as const) {
    const got = outcome(observed.reply);
    assert.deepEqual(expected.message === undefined ? { code: got.code } : got, expected, `${side}: ${JSON.stringify(observed.reply)}`);
  }
  await assertSame(pair, request);
}

/** One variant per protocol and HTTP version: for what the codec cannot change. */
const perProtocol = unaryVariants.filter((v) => v.codec === "proto" && v.contentType !== "application/grpc+proto");
const deadlineHeader = (v: Variant) => (v.protocol === "connect" ? "connect-timeout-ms: 0" : "grpc-timeout: 0m");

describe("where connect-node is wrong, both paths answer correctly", () => {
  let pair: Pair;
  before(async () => (pair = await startPair()));
  after(() => pair.close());

  const enveloped = [...unaryVariants.filter((v) => v.streaming), ...streamVariants.filter((v) => v.protocol === "connect" && v.http === "2")];
  for (const v of enveloped) {
    const method = v.protocol === "connect" ? "Bidi" : "Unary";
    it(`(a) a body that ends right after a 5-byte envelope header is an incomplete envelope, ${v.name}, ${method}`, async () => {
      const request = { ...call(v, method, []), steps: [Buffer.from([0, 0, 0, 0, 7]), "end" as const] };
      await assertBothCorrect(pair, request, { code: "invalid_argument", message: "protocol error: incomplete envelope" });
    });
  }

  for (const v of unaryVariants) {
    it(`(b) ${deadlineHeader(v)} is deadline_exceeded, whatever the handler does, ${v.name}`, async () => {
      await assertBothCorrect(pair, call(v, "Unary", [{}], { deadlineMs: 0 }), { code: "deadline_exceeded" });
    });
    it(`(b) ${deadlineHeader(v)} is deadline_exceeded, not the broken body's error, ${v.name}`, async () => {
      const broken = v.streaming ? envelope(0, Buffer.from([0x08]), 12) : Buffer.from("{not a message");
      await assertBothCorrect(pair, { ...call(v, "Unary", [{}], { deadlineMs: 0 }), steps: [broken, "end"] }, { code: "deadline_exceeded" });
    });
    it(`(c) a body later than its deadline is deadline_exceeded, whatever the handler does, ${v.name}`, async () => {
      // Not the empty message: in proto its body is empty, so nothing would arrive late.
      const request = call(v, "Unary", [{ padding: new Uint8Array(8) }], { deadlineMs: 100 });
      await assertBothCorrect(pair, { ...request, steps: [{ sleepMs: 400 }, ...request.steps!] }, { code: "deadline_exceeded" });
    });
    const header = v.protocol === "connect" ? "connect-timeout-ms" : "grpc-timeout";
    it(`(d) ${header} sent twice, empty: invalid_argument, the same message on both paths, ${v.name}`, async () => {
      await assertBothCorrect(pair, call(v, "Unary", [{}], { headers: [[header, ""], [header, ""]] }), { code: "invalid_argument" });
    });
  }
  for (const v of streamVariants.filter((v) => v.protocol !== "grpc" || v.contentType === "application/grpc")) {
    it(`(b) ${deadlineHeader(v)} is deadline_exceeded for a server stream too, ${v.name}`, async () => {
      await assertBothCorrect(pair, call(v, "ServerStream", [{ responses: 1 }], { deadlineMs: 0 }), { code: "deadline_exceeded" });
    });
  }
});

// A body that never ends waits for the deadline (or, today on the general path, for the
// client to give up): each case on a pair of its own, all at once.
describe("where connect-node is wrong: bodies that never end", { concurrency: true }, () => {
  const neverEnds = (v: Variant, deadlineMs: number): RawRequest => ({ ...call(v, "Unary", [{}], { deadlineMs, open: true }), steps: [Buffer.from([0, 0])], timeoutMs: 2_000 });
  for (const v of perProtocol) {
    it(`(b) ${deadlineHeader(v)} is deadline_exceeded without reading the body, ${v.name}`, async () => {
      const pair = await startPair();
      try {
        await assertBothCorrect(pair, neverEnds(v, 0), { code: "deadline_exceeded" });
      } finally {
        await pair.close();
      }
    });
    it(`(c) a unary call whose body never ends gets deadline_exceeded at its deadline, ${v.name}`, async () => {
      const pair = await startPair();
      try {
        await assertBothCorrect(pair, neverEnds(v, 200), { code: "deadline_exceeded" });
      } finally {
        await pair.close();
      }
    });
  }
});

describe("the engine serves the exercise service", () => {
  let pair: Pair;
  before(async () => (pair = await startPair()));
  after(() => pair.close());

  // By the engine's own counter, not by timing; the general path's server must not move it (assertSame).
  for (const v of [...unaryVariants, ...getVariants]) {
    const method = v.protocol === "connect-get" ? "Query" : "Unary";
    it(`serves ${method} over ${v.name}`, async () => {
      const observed = await assertSame(pair, call(v, method, [{ responses: 1 }]));
      assert.equal(observed.engineCalls, 1);
    });
  }
  for (const v of streamVariants.filter((v) => v.protocol === "grpc")) {
    it(`serves a bidi stream over ${v.name}`, async () => {
      const observed = await assertSame(pair, call(v, "Bidi", [{ responses: 1 }]));
      assert.equal(observed.engineCalls, 1);
    });
  }
  // What the README lists as left to connect-node.
  for (const v of streamVariants.filter((v) => v.protocol !== "grpc")) {
    it(`leaves a ${v.protocol} stream over ${v.name} to connect-node`, async () => {
      const observed = await assertSame(pair, call(v, "ServerStream", [{ responses: 1 }]));
      assert.equal(observed.engineCalls, 0);
    });
  }
});
