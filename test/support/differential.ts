import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import http from "node:http";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import { gunzipSync } from "node:zlib";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import type { Config } from "../../src/config.js";
import { exerciseRoutes, headerInterceptor, rejectingInterceptor } from "./exercise-service.js";
import { type LogLine, stableLine } from "./logs.js";
import { frameFlag, frameType, h2Frame, hpack, parseH1, RawH2 } from "./raw.js";
import { startLoggedServer, type LoggedServer } from "./server.js";

/**
 * The differential harness: the same raw request goes to a server with the
 * protocol engine (the default config) and to one that sends every call to
 * connect-node's general path (`fastPath: false`), and both must answer,
 * log and count it alike: HTTP status, headers (less the date), trailers,
 * body bytes, the stream's reset code, the line per RPC (less time, duration,
 * pid, host and client port) and the change in /metrics' grpc_server_*
 * series. Waits only sequence an exchange; nothing asserts on time.
 */

export type Side = LoggedServer;

export interface Pair {
  /** The default config: calls the engine serves go through it. */
  engine: Side;
  /** `fastPath: false`: every call goes through connect-node's general path. */
  general: Side;
  close(): Promise<void>;
}

/**
 * Two servers configured alike but for the path. `exercise` (default on)
 * registers the test-only ExerciseService and the two exercise interceptors
 * through StartOptions, as a team would add its own.
 */
export async function startPair(overrides: Partial<Config> = {}, { exercise = true } = {}): Promise<Pair> {
  const options = exercise ? { services: exerciseRoutes, interceptors: [headerInterceptor, rejectingInterceptor] } : {};
  const [engine, general] = await Promise.all([
    startLoggedServer({ ...overrides, fastPath: true }, options),
    startLoggedServer({ ...overrides, fastPath: false }, options),
  ]);
  return { engine, general, close: async () => void (await Promise.all([engine.server.close(0), general.server.close(0)])) };
}

/** What the client does, in order. */
export type Step =
  | Uint8Array
  | { sleepMs: number }
  /** Until this many response messages (envelopes) have arrived; HTTP/2 only. */
  | { replies: number }
  /** Something to do at this point of the exchange (e.g. stop the server). */
  | { then: () => unknown }
  /** Stop or start reading the replies (flow control then holds the server back); HTTP/2 only. */
  | "pause reading"
  | "resume reading"
  /** Ends the request body. Without it the body stays open: the server decides. */
  | "end"
  /** HTTP/2: RST_STREAM(CANCEL), as gRPC clients cancel; HTTP/1.1: the client closes its connection. */
  | "cancel";

export interface RawRequest {
  http: "1.1" | "2";
  /** Default POST. */
  method?: string;
  /** Path and query. */
  path: string;
  /** In order; a name may repeat. Pseudo-headers other than :method and :path are the harness's. */
  headers?: Record<string, string> | Array<[string, string]>;
  /**
   * Default: ["end"]. Over HTTP/1.1 the body goes with a content-length of
   * all its pieces, unless the headers declare one or ask for chunks, or it
   * never ends (no "end"): then in chunks.
   */
  steps?: Step[];
  /** Lines each server must log for it (default: 1 for POST and GET, 0 else). */
  lines?: number;
  /** Give up on a reply after this long (default 10 s) and record "timeout". */
  timeoutMs?: number;
}

/** What the client saw. */
export interface Reply {
  /** 0 when no response header came (HTTP/1.1: the server closed without one; HTTP/2: reset first, or cancelled). */
  status: number;
  headers: Record<string, unknown>;
  trailers: Record<string, unknown> | undefined;
  body: { length: number; sha256: string; /** The first bytes, enough to read a failure. */ start: string };
  /** The body's envelopes (flags, length, first bytes), for enveloped content types. */
  messages: Array<{ flags: number; length: number; start: string }> | undefined;
  /** "end", "reset <code>", "closed" (HTTP/1.1, before a whole reply), "cancelled" or "timeout". */
  ending: string;
}

/** Everything one server produced for one request. */
export interface Observed {
  reply: Reply;
  log: LogLine[];
  /** Changed grpc_server_* series, by "name{labels}". */
  metrics: Record<string, number>;
  /** Calls the engine served (routeguide_engine_calls_total), or undefined before the engine has that counter. */
  engineCalls: number | undefined;
}

/** Headers that differ between any two answers. */
const volatileHeaders = new Set(["date"]);

/** Sends `request` to one server and records what it produced. */
export function observe(side: Side, request: RawRequest): Promise<Observed> {
  const method = request.method ?? "POST";
  const lines = request.lines ?? (method === "POST" || method === "GET" ? 1 : 0);
  return observeWith(side, lines, () => exchange(side.server.url, request));
}

/** Runs `act` against one server (for exchanges the harness cannot script) and records the `lines` it logged and what it counted. */
export async function observeWith<T>(side: Side, lines: number, act: () => Promise<T>): Promise<Omit<Observed, "reply"> & { reply: T }> {
  const before = await scrape(side.server.url);
  const from = side.logs.entries.length;
  const reply = await act();
  const log = (await side.logs.since(from, lines)).map(stableLine);
  const after = await scrape(side.server.url);
  return { reply, log, metrics: delta(before.series, after.series), engineCalls: engineDelta(before.engine, after.engine) };
}

/**
 * The differential check. Returns what both observed (equal but for
 * engineCalls), for assertions on the answer itself. `except`: metrics left
 * out of the comparison, by name prefix.
 */
export async function assertSame(pair: Pair, request: RawRequest, { except }: { except?: string } = {}): Promise<Observed> {
  const [engine, general] = await Promise.all([observe(pair.engine, request), observe(pair.general, request)]);
  assert.ok(!general.engineCalls, "the general path's server served a call through the engine");
  const compared = ({ engineCalls: _, metrics, reply, ...rest }: Observed) => ({
    ...rest,
    reply: reply === general.reply ? keptAliveAsEngine(reply, engine.reply, request) : reply,
    metrics: Object.fromEntries(Object.entries(metrics).filter(([key]) => except === undefined || !key.startsWith(except))),
  });
  assert.deepEqual(compared(engine), compared(general), `${request.method ?? "POST"} ${request.path} over HTTP/${request.http}`);
  return engine;
}

/**
 * The one intended difference: over HTTP/1.1 the engine may close the
 * connection after an error it answered before reading the whole body (the
 * rest might never come, or be another request's bytes), where connect-node
 * answers keep-alive and leaves the connection to stall. Reads the general
 * path's reply as the engine's in that case only.
 */
function keptAliveAsEngine(general: Reply, engine: Reply, request: RawRequest): Reply {
  const closes = request.http === "1.1" && engine.headers.connection === "close" && general.headers.connection === "keep-alive";
  if (!closes || outcome(engine).code === "ok") return general;
  const { "keep-alive": _, ...headers } = general.headers;
  return { ...general, headers: { ...headers, connection: "close" } };
}

/** One exchange on a connection of its own. */
export function exchange(url: string, request: RawRequest): Promise<Reply> {
  const steps = request.steps ?? ["end"];
  const timeoutMs = request.timeoutMs ?? 10_000;
  if (request.http === "1.1") return h1Exchange(url, request, steps, timeoutMs);
  return steps.includes("cancel") ? rawH2Exchange(url, request, steps, timeoutMs) : h2Exchange(url, request, steps, timeoutMs);
}

function pairs(headers: RawRequest["headers"]): Array<[string, string]> {
  return Array.isArray(headers) ? headers : Object.entries(headers ?? {});
}

function isBytes(step: Step): step is Uint8Array {
  return step instanceof Uint8Array;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `steps` until they end or `stopped()` says the exchange is over. */
async function run(steps: Step[], stopped: () => boolean, act: (step: Exclude<Step, { sleepMs: number } | { then: () => unknown }>) => Promise<void>) {
  for (const step of steps) {
    if (stopped()) return;
    if (!isBytes(step) && typeof step === "object" && "sleepMs" in step) await sleep(step.sleepMs);
    else if (!isBytes(step) && typeof step === "object" && "then" in step) step.then();
    else await act(step);
  }
}

function summary(body: Buffer, contentType: unknown): Pick<Reply, "body" | "messages"> {
  const start = (bytes: Buffer) => bytes.subarray(0, 1024).toString("latin1");
  const enveloped = typeof contentType === "string" && /^application\/(grpc|connect\+)/.test(contentType);
  let messages: Reply["messages"];
  if (enveloped) {
    messages = [];
    let offset = 0;
    while (offset + 5 <= body.length) {
      const length = body.readUInt32BE(offset + 1);
      const data = body.subarray(offset + 5, offset + 5 + length);
      // Trailers (gRPC-Web) and end-of-stream messages (Connect) are kept whole: outcome() reads them.
      messages.push({ flags: body[offset]!, length, start: body[offset]! & 0x82 ? data.toString("latin1") : start(data) });
      offset += 5 + length;
    }
    if (offset < body.length) messages.push({ flags: -1, length: body.length - offset, start: start(body.subarray(offset)) });
  }
  return { body: { length: body.length, sha256: createHash("sha256").update(body).digest("hex"), start: start(body) }, messages };
}

function withoutVolatile(headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !volatileHeaders.has(name) && name !== ":status"));
}

/**
 * The status the client got, read as its protocol carries it: gRPC trailers
 * (or headers, trailers-only), gRPC-Web's trailer frame, Connect's
 * end-of-stream message or unary error body. Codes by Connect's names.
 */
export function outcome(reply: Reply): { code: string; message: string } {
  const contentType = String(reply.headers["content-type"] ?? "");
  const fromGrpc = (fields: Record<string, unknown>) => {
    const status = fields["grpc-status"];
    if (status === undefined) return undefined;
    const message = fields["grpc-message"];
    return { code: Number(status) === 0 ? "ok" : codeToString(Number(status)), message: message === undefined ? "" : decodeURIComponent(String(message)) };
  };
  if (contentType.startsWith("application/grpc-web")) {
    const trailer = reply.messages?.find((m) => m.flags & 0x80);
    if (trailer !== undefined) {
      const bytes = Buffer.from(trailer.start, "latin1");
      const text = (trailer.flags & 0x01 ? gunzipSync(bytes) : bytes).toString("latin1");
      const fields = Object.fromEntries(text.split("\r\n").filter(Boolean).map((line) => [line.slice(0, line.indexOf(":")).toLowerCase(), line.slice(line.indexOf(":") + 1).trim()]));
      return fromGrpc(fields) ?? { code: "none", message: text };
    }
    return fromGrpc(reply.headers) ?? { code: "none", message: "" };
  }
  if (contentType.startsWith("application/grpc")) return fromGrpc(reply.trailers ?? {}) ?? fromGrpc(reply.headers) ?? { code: "none", message: "" };
  if (contentType.startsWith("application/connect+")) {
    const end = reply.messages?.find((m) => m.flags & 0x02);
    if (end === undefined) return { code: "none", message: "" };
    const bytes = Buffer.from(end.start, "latin1");
    const { error } = JSON.parse((end.flags & 0x01 ? gunzipSync(bytes) : bytes).toString()) as { error?: { code: string; message?: string } };
    return error === undefined ? { code: "ok", message: "" } : { code: error.code, message: error.message ?? "" };
  }
  if (reply.status === 200) return { code: "ok", message: "" };
  if (contentType === "application/json" && reply.body.length === Buffer.byteLength(reply.body.start, "latin1")) {
    const bytes = Buffer.from(reply.body.start, "latin1");
    const { code, message } = JSON.parse((reply.headers["content-encoding"] === "gzip" ? gunzipSync(bytes) : bytes).toString()) as { code: string; message?: string };
    return { code, message: message ?? "" };
  }
  return { code: `http ${reply.status}`, message: "" };
}

/** Counts the complete envelopes of a body as it arrives, without copying it (bodies reach megabytes). */
class EnvelopeCounter {
  count = 0;
  /** Bytes of the current envelope still to come, once its header is whole. */
  private left = 0;
  private header: number[] = [];

  add(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.left > 0) {
        const take = Math.min(this.left, chunk.length - at);
        this.left -= take;
        at += take;
        if (this.left === 0) this.count++;
        continue;
      }
      this.header.push(chunk[at++]!);
      if (this.header.length < 5) continue;
      this.left = Buffer.from(this.header).readUInt32BE(1);
      this.header = [];
      if (this.left === 0) this.count++;
    }
  }
}

/** Counts the complete envelopes of `body`. */
function envelopeCount(body: Uint8Array): number {
  const counter = new EnvelopeCounter();
  counter.add(body);
  return counter.count;
}

async function h2Exchange(url: string, request: RawRequest, steps: Step[], timeoutMs: number): Promise<Reply> {
  const session = http2.connect(url, { rejectUnauthorized: false }); // the TLS tests' certificate is self-signed
  session.on("error", () => {}); // the stream reports what matters
  try {
    const headers: http2.OutgoingHttpHeaders = { ":method": request.method ?? "POST", ":path": request.path };
    for (const [name, value] of pairs(request.headers)) {
      const previous = headers[name];
      // Node sends an array as one field per value.
      headers[name] = previous === undefined ? value : [...(Array.isArray(previous) ? previous : [String(previous)]), value];
    }
    const stream = session.request(headers);
    let status = 0;
    let responseHeaders: Record<string, unknown> = {};
    let trailers: Record<string, unknown> | undefined;
    const chunks: Buffer[] = [];
    const counter = new EnvelopeCounter();
    let onData = () => {};
    let ending = "end";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
      responseHeaders = withoutVolatile(h);
    });
    stream.on("trailers", (t) => (trailers = { ...t }));
    stream.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      counter.add(chunk);
      onData();
    });
    stream.on("error", () => {}); // a reset shows up in rstCode
    const closed = new Promise<void>((resolve) => stream.on("close", resolve));
    const timer = setTimeout(() => {
      ending = "timeout";
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, timeoutMs);
    await run(steps, () => stream.destroyed, async (step) => {
      if (isBytes(step)) stream.write(step);
      else if (step === "end") stream.end();
      else if (step === "pause reading") stream.pause();
      else if (step === "resume reading") stream.resume();
      else if (step === "cancel") throw new Error("cancel goes over raw frames");
      else {
        await Promise.race([
          closed,
          new Promise<void>((resolve) => {
            onData = () => counter.count >= step.replies && resolve();
            onData();
          }),
        ]);
      }
    });
    await closed;
    clearTimeout(timer);
    if (ending === "end" && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) ending = `reset ${stream.rstCode}`;
    const body = Buffer.concat(chunks);
    return { status, headers: responseHeaders, trailers, ...summary(body, responseHeaders["content-type"]), ending };
  } finally {
    session.destroy();
  }
}

/**
 * An exchange over raw frames, for cancellation: node:http2's client ends
 * its side before it resets, which would race the reset. The reply is what
 * arrived before the cancel: whether response headers came (they are not
 * decoded) and the DATA bytes.
 */
async function rawH2Exchange(url: string, request: RawRequest, steps: Step[], timeoutMs: number): Promise<Reply> {
  const { port, protocol } = new URL(url);
  if (protocol === "https:") throw new Error("cancel over raw frames needs cleartext");
  const h2 = new RawH2(Number(port));
  const streamId = 1;
  const data = () => Buffer.concat(h2.frames.filter((f) => f.streamId === streamId && f.type === frameType.data).map((f) => f.payload));
  let ending = "end";
  const deadline = Date.now() + timeoutMs;
  try {
    const block = hpack([
      [":method", request.method ?? "POST"],
      [":scheme", "http"],
      [":path", request.path],
      [":authority", `127.0.0.1:${port}`],
      ...pairs(request.headers),
    ]);
    h2.send(h2Frame(frameType.headers, frameFlag.endHeaders, streamId, block));
    let replied: { headers: boolean; data: Buffer } | undefined;
    await run(steps, () => replied !== undefined || h2.isClosed, async (step) => {
      if (isBytes(step)) {
        for (let at = 0; at < step.length; at += 16_384) h2.send(h2Frame(frameType.data, 0, streamId, step.subarray(at, at + 16_384)));
      } else if (step === "end") h2.send(h2Frame(frameType.data, frameFlag.endStream, streamId));
      else if (step === "cancel") {
        replied = { headers: h2.frames.some((f) => f.streamId === streamId && f.type === frameType.headers), data: data() };
        h2.send(h2Frame(frameType.rstStream, 0, streamId, Buffer.from([0, 0, 0, http2.constants.NGHTTP2_CANCEL])));
        ending = "cancelled";
      } else if (step === "pause reading" || step === "resume reading") throw new Error(`${step}: not over raw frames`);
      else {
        const ended = (f: { streamId: number; type: number; flags: number }) =>
          f.streamId === streamId && (f.type === frameType.rstStream || (f.flags & frameFlag.endStream) !== 0);
        while (envelopeCount(data()) < step.replies && !h2.frames.some(ended) && !h2.isClosed) {
          if (Date.now() > deadline) {
            ending = "timeout";
            return;
          }
          await sleep(10);
        }
      }
    });
    const seen = replied ?? { headers: h2.frames.some((f) => f.streamId === streamId && f.type === frameType.headers), data: data() };
    return { status: 0, headers: { received: seen.headers }, trailers: undefined, ...summary(seen.data, "application/grpc"), ending };
  } finally {
    h2.destroy();
  }
}

function h1Exchange(url: string, request: RawRequest, steps: Step[], timeoutMs: number): Promise<Reply> {
  const unsupported = steps.find((step) => !isBytes(step) && (step === "pause reading" || step === "resume reading" || (typeof step === "object" && "replies" in step)));
  if (unsupported !== undefined) return Promise.reject(new Error(`${JSON.stringify(unsupported)}: HTTP/2 only`));
  const { hostname, port, protocol } = new URL(url);
  const headers = pairs(request.headers);
  const has = (name: string) => headers.some(([n]) => n.toLowerCase() === name);
  const method = request.method ?? "POST";
  const bodyLength = steps.filter(isBytes).reduce((sum, piece) => sum + piece.length, 0);
  // A body that stays open goes in chunks, without the last one: a content-length would end it.
  const open = !steps.includes("end") && !has("content-length");
  const chunked = has("transfer-encoding") || open;
  const head = [`${method} ${request.path} HTTP/1.1`];
  if (!has("host")) head.push(`Host: 127.0.0.1:${port}`);
  for (const [name, value] of headers) head.push(`${name}: ${value}`);
  if (open && !has("transfer-encoding")) head.push("Transfer-Encoding: chunked");
  if (!chunked && !has("content-length") && (method !== "GET" || bodyLength > 0)) head.push(`Content-Length: ${bodyLength}`);
  return new Promise((resolve) => {
    const socket: net.Socket =
      protocol === "https:"
        ? tls.connect({ host: hostname, port: Number(port), rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] })
        : net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    let ending = "end";
    // When the reply may be whole: parsing after every chunk would be quadratic in a body of megabytes.
    let wholeAt: number | undefined;
    let untilEnd = false;
    let tail = Buffer.alloc(0);
    const mayBeWhole = (last: Buffer) => {
      tail = Buffer.concat([tail, last]).subarray(-4);
      if (wholeAt === undefined && !untilEnd) {
        const received = Buffer.concat(chunks);
        const end = received.indexOf("\r\n\r\n");
        if (end < 0) return false;
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(received.subarray(0, end).toString("latin1"))?.[1];
        if (length !== undefined) wholeAt = end + 4 + Number(length);
        else untilEnd = true;
      }
      return wholeAt !== undefined ? size >= wholeAt : tail.toString("latin1") === "\r\n\r\n";
    };
    const finish = (closed: boolean) => {
      if (done) return;
      const received = Buffer.concat(chunks);
      const reply = parseH1(received, closed);
      if (!reply && !closed) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (!reply) {
        if (ending === "end") ending = "closed";
        resolve({ status: 0, headers: {}, trailers: undefined, ...summary(received, undefined), ending });
        return;
      }
      const trailers = Object.keys(reply.trailers).length > 0 ? reply.trailers : undefined;
      const replyHeaders = withoutVolatile(reply.headers);
      resolve({ status: reply.status, headers: replyHeaders, trailers, ...summary(reply.body, replyHeaders["content-type"]), ending });
    };
    const timer = setTimeout(() => {
      ending = "timeout";
      finish(true);
    }, timeoutMs);
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (mayBeWhole(chunk)) finish(false);
    });
    socket.on("error", () => {}); // a reset is a close
    socket.on("close", () => finish(true));
    socket.write(`${head.join("\r\n")}\r\n\r\n`);
    void run(steps, () => done || socket.destroyed, async (step) => {
      if (isBytes(step)) socket.write(chunked ? Buffer.concat([Buffer.from(`${step.length.toString(16)}\r\n`), step, Buffer.from("\r\n")]) : step);
      else if (step === "end") {
        if (chunked) socket.write("0\r\n\r\n");
      } else if (step === "cancel") {
        ending = "cancelled";
        finish(true);
      }
    });
  });
}

/** /metrics, split into the grpc_server_* series compared and the engine's own counter. */
async function scrape(url: string): Promise<{ series: Map<string, number>; engine: number | undefined }> {
  const text = await getText(`${url}/metrics`);
  const series = new Map<string, number>();
  let engine: number | undefined;
  for (const line of text.split("\n")) {
    const match = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!match) continue;
    const [, name, labels, value] = match as unknown as [string, string, string, string];
    if (name === "routeguide_engine_calls_total") engine = (engine ?? 0) + Number(value);
    // Durations only by count: their buckets depend on time. In flight is 0 before and after.
    if (!name.startsWith("grpc_server_") || name === "grpc_server_calls_in_flight") continue;
    if (name.startsWith("grpc_server_handling_seconds") && name !== "grpc_server_handling_seconds_count") continue;
    series.set(`${name}{${labels}}`, Number(value));
  }
  return { series, engine };
}

function delta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const changed: Record<string, number> = {};
  for (const [key, value] of after) {
    const d = value - (before.get(key) ?? 0);
    if (d !== 0) changed[key] = d;
  }
  return changed;
}

function engineDelta(before: number | undefined, after: number | undefined): number | undefined {
  return after === undefined ? undefined : after - (before ?? 0);
}

/** GET over HTTP/1.1, accepting the TLS tests' self-signed certificate. */
export function getText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const get = url.startsWith("https:") ? https.get : http.get;
    get(url, { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`GET ${url}: ${res.statusCode}`))));
    })
      .on("timeout", function (this: http.ClientRequest) {
        this.destroy(new Error(`GET ${url}: no answer within 10 s`));
      })
      .on("error", reject);
  });
}
