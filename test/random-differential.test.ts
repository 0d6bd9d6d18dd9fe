// A seeded random differential: valid, malformed and hostile requests in
// every protocol go to the engine and to connect-node's general path
// (test/support/differential.ts), and both must answer, log and count each
// alike. The seed is printed; DIFF_SEED=<seed> replays a run, DIFF_RUNS
// raises the count for a longer hunt.
import { after, before, describe, it } from "node:test";
import fc from "fast-check";
import { assertSame, type Pair, type RawRequest, startPair, type Step } from "./support/differential.js";
import { rejectHeader } from "./support/exercise-service.js";
import {
  call,
  type ExerciseInit,
  getVariants,
  type MethodName,
  streamVariants,
  unaryVariants,
  type Variant,
} from "./support/exercise-requests.js";
import { mutation } from "./support/mutation.js";

const runs = Number(process.env.DIFF_RUNS ?? 500);
const seed = Number(process.env.DIFF_SEED ?? Date.now() % 2 ** 31);

const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
// Visible ASCII, what any client can put in a header value.
const headerValue = fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,20}[\x21-\x7e])?$/);
// Names a handler may set: not the protocol's own, which would make any server's answer invalid.
const settable = token.map((t) => `x-${t}`);

const exerciseMessage: fc.Arbitrary<ExerciseInit> = fc.record(
  {
    echoHeaders: fc.array(fc.oneof(fc.constant("x-echo"), fc.constant("content-type"), settable), { maxLength: 2 }),
    responseHeaders: fc.dictionary(settable, headerValue, { maxKeys: 2 }),
    responseTrailers: fc.dictionary(settable, headerValue, { maxKeys: 2 }),
    responses: fc.nat(3),
    payloadBytes: fc.oneof(fc.nat(64), fc.constant(2000)),
    failure: fc.record({
      code: fc.integer({ min: 0, max: 16 }),
      message: fc.string({ maxLength: 30 }),
      details: fc.array(fc.record({ reason: token, metadata: fc.dictionary(token, token, { maxKeys: 1 }) }), { maxLength: 1 }),
      after: fc.nat(3),
    }),
    padding: fc.uint8Array({ maxLength: 64 }),
  },
  { requiredKeys: [] },
);

const variants = [...new Set([...unaryVariants, ...getVariants, ...streamVariants])];
const methods: MethodName[] = ["Unary", "Query", "ServerStream", "ClientStream", "Bidi"];

/** Headers a client might add: the exercise's own, protocol headers with odd values, and random ones. */
const extraHeaders: fc.Arbitrary<Array<[string, string]>> = fc.array(
  fc.oneof(
    fc.tuple(fc.constant("x-echo"), headerValue),
    fc.tuple(fc.constant(rejectHeader), headerValue),
    fc.tuple(fc.constantFrom("grpc-timeout", "connect-timeout-ms"), fc.oneof(fc.constantFrom("60000", "60S", "99999999H", "1x", "-1", "1.5"), headerValue)),
    fc.tuple(fc.constantFrom("grpc-encoding", "connect-content-encoding", "content-encoding"), fc.constantFrom("identity", "snappy", "GZIP", "br")),
    fc.tuple(fc.constantFrom("grpc-accept-encoding", "connect-accept-encoding", "accept-encoding"), fc.constantFrom("gzip", "br", "snappy,gzip", "*")),
    fc.tuple(fc.constant("connect-protocol-version"), fc.constantFrom("1", "2", "")),
    fc.tuple(fc.constant("content-type"), fc.oneof(fc.constantFrom("application/grpc", "application/connect+proto", "application/json", "text/plain"), headerValue)),
    fc.tuple(settable, headerValue),
  ),
  { maxLength: 3 },
);

const randomRequest = fc
  .record({
    variant: fc.constantFrom(...variants),
    method: fc.constantFrom(...methods),
    messages: fc.array(exerciseMessage, { minLength: 0, maxLength: 3 }),
    gzip: fc.boolean(),
    acceptGzip: fc.boolean(),
    headers: extraHeaders,
    // What becomes of the body: sent as is, mutated, or replaced with random bytes.
    body: fc.oneof({ weight: 4, arbitrary: fc.constant("valid" as const) }, { weight: 3, arbitrary: fc.constant("mutated" as const) }, { weight: 1, arbitrary: fc.constant("random" as const) }),
    edits: fc.infiniteStream(fc.nat()),
    random: fc.uint8Array({ maxLength: 48 }),
    path: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: token.map((t) => `/exercise.v1.ExerciseService/${t}`) }),
    verb: fc.oneof({ weight: 12, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "OPTIONS") }),
  })
  .chain((r) => {
    const base = call(r.variant, r.variant.protocol === "connect-get" ? "Query" : r.method, r.messages, { gzip: r.gzip, acceptGzip: r.acceptGzip, headers: r.headers });
    const body = Buffer.concat((base.steps ?? []).filter((s): s is Uint8Array => s instanceof Uint8Array));
    const bodyArbitrary = r.body === "valid" || base.method === "GET" ? fc.constant(body) : r.body === "random" ? fc.constant(Buffer.from(r.random)) : mutation(body);
    return bodyArbitrary.map((bytes) => ({ ...r, request: finish(base, r.variant, bytes, r.path, r.verb) }));
  });

/** The request with its body (and, rarely, its path or method) replaced. */
function finish(base: RawRequest, v: Variant, body: Buffer, path: string | undefined, verb: string | undefined): RawRequest {
  const method = verb ?? base.method ?? "POST";
  const steps: Step[] = method === "GET" ? ["end"] : [body, "end"];
  const known = path === undefined && (method === "POST" || method === "GET");
  // node:http2 sends one value of these only (HTTP/1.1 sends them all): there the last one wins.
  const pairs = (base.headers ?? []) as Array<[string, string]>;
  const single = (name: string) => name === "content-type" || name === "content-encoding";
  const headers = v.http === "2" ? pairs.filter(([name], i) => !single(name) || pairs.findLastIndex(([n]) => n === name) === i) : pairs;
  return { ...base, method, path: path ?? base.path, headers, steps, lines: known ? 1 : 0, http: v.http };
}

describe("a seeded random differential of the engine against connect-node", () => {
  let pair: Pair;
  before(async () => (pair = await startPair()));
  after(() => pair.close());

  it(`answers ${runs} random requests alike (seed ${seed})`, async () => {
    console.log(`random differential: seed ${seed} (DIFF_SEED=${seed} replays it), ${runs} runs`);
    await fc.assert(
      fc.asyncProperty(randomRequest, async ({ request }) => {
        await assertSame(pair, request);
      }),
      { numRuns: runs, seed, endOnFailure: true },
    );
  });
});
