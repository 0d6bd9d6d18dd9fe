import http2 from "node:http2";
import { create, type Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Compression } from "@connectrpc/connect/protocol";
import { grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { capDeadline } from "../transport/limits.js";
import { releaseAfterResponse, type StreamHandler } from "../transport/listener.js";
import { type CallSource, type CallValues, EngineContext } from "./context.js";
import { ActiveCall, type Engine, type MethodEntry } from "./engine.js";
import { assertUncompressed, compressedFlag, type Envelope, envelope, EnvelopeSplitter } from "./envelopes.js";
import { type Call, connectionPeer, withCall } from "../observability/calls.js";
import { asError, deadlineExceeded, extraInput, incompleteEnvelope, missingInput } from "./errors.js";
import { CodecMemo, headerValue } from "./headers.js";
import { NormalizedOutput, type UnaryReceiver } from "./invoke.js";
import { MessageQueue } from "./message-queue.js";

/**
 * gRPC straight on node:http2 streams, for every method of every service:
 * Connect's general path spends most of a call in its async-iterable
 * pipeline, AbortSignals and Node's compatibility layer (README,
 * Performance). It answers what connect-node answers, with the same limits,
 * deadlines, shutdown, logs and metrics (test/engine-differential.test.ts
 * proves it). It takes a stream only when its headers show nothing it leaves
 * to connect-node (request compression, browsers, unknown methods): those
 * go on to the compatibility layer, unread. For the listener's `onStream`.
 */
export function createGrpcEngine(engine: Engine): StreamHandler {
  const headers = new ResponseHeaders(engine);
  return (stream, requestHeaders) => take(engine, headers, stream, requestHeaders);
}

function take(engine: Engine, headers: ResponseHeaders, stream: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders): boolean {
  const path = h[":path"];
  const entry = path === undefined ? undefined : engine.methods.get(path);
  if (entry === undefined || h[":method"] !== "POST") return false;
  const binary = codecOf(h["content-type"]);
  if (binary === undefined) return false;
  const encoding = h["grpc-encoding"];
  if (encoding !== undefined && encoding !== "identity") return false;
  // Browsers (CORS answers depend on their Origin), and requests the guard refuses for a missing authority.
  if (h.origin !== undefined || (h[":authority"] === undefined && h.host === undefined)) return false;
  const accept = h["grpc-accept-encoding"];
  const compression = engine.responseCompression(accept === undefined ? null : String(accept), "grpc-accept-encoding");
  // The request guard's rewrite (the server's maximum, a Node timer's), before parseTimeout reads it.
  capDeadline(h, engine.maxDeadlineMs);
  const session = stream.session;
  const record = engine.observability.callStarted(path!, "grpc", "2.0", session && connectionPeer(session));
  engine.observability.metrics.engineServed("grpc");
  const call =
    entry.method.methodKind === "unary"
      ? new UnaryGrpcCall(engine, entry, stream, h, record, binary, compression, headers)
      : new StreamingGrpcCall(engine, entry, stream, h, record, binary, compression, headers);
  call.start(h["grpc-timeout"]);
  return true;
}

/** application/grpc and +proto: binary; +json: JSON; anything else is left to connect-node. */
function codecOf(type: string | undefined): boolean | undefined {
  if (type === "application/grpc" || type === "application/grpc+proto") return true;
  if (type === "application/grpc+json") return false;
  return undefined;
}

/** The response headers before a handler touches them, per codec and compression, built once. */
class ResponseHeaders {
  /** As Connect's gRPC handler starts its context's responseHeader. */
  readonly initial = new CodecMemo<Readonly<Record<string, string>>>((binary, compression) =>
    Object.freeze({
      "content-type": binary ? "application/grpc+proto" : "application/grpc+json",
      ...(compression && { "grpc-encoding": compression.name }),
    }),
  );

  /** What goes on the wire: the status, the request guard's grpc-accept-encoding, and the headers. */
  readonly wire = new CodecMemo<http2.OutgoingHttpHeaders>((binary, compression) =>
    Object.freeze({
      ":status": 200,
      "grpc-accept-encoding": this.engine.acceptEncodings,
      ...this.initial.get(binary, compression),
    }),
  );

  constructor(readonly engine: Engine) {}
}

const okTrailer = Object.freeze({ "grpc-status": grpcStatusOk });
const kScheme = Symbol("engine.grpc.scheme");
const kCall = Symbol("engine.grpc.call");
type Stream = http2.ServerHttp2Stream & { [kCall]?: GrpcCall };

/** One call on one stream. Listeners are shared functions that find the call on the stream: no closures per call. */
abstract class GrpcCall extends ActiveCall implements CallSource {
  /** Set once the response's end (trailers) is decided; later events are ignored. */
  done = false;
  readonly ctx: EngineContext;
  readonly reader: EnvelopeSplitter;
  #headersSent = false;
  #trailers: http2.OutgoingHttpHeaders = okTrailer;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly engine: Engine,
    readonly entry: MethodEntry,
    readonly stream: Stream,
    requestHeaders: http2.IncomingHttpHeaders,
    readonly record: Call | undefined,
    readonly binary: boolean,
    readonly compression: Compression | null,
    readonly headers: ResponseHeaders,
  ) {
    super();
    this.reader = new EnvelopeSplitter(engine.settings.readMaxBytes);
    this.nodeHeaders = requestHeaders;
    this.ctx = new EngineContext(this, entry.method, "grpc", "POST", headers.initial.get(binary, compression), okTrailer);
  }

  // The context's source (CallSource): read only when a handler or interceptor asks.
  readonly nodeHeaders: http2.IncomingHttpHeaders;
  get scheme(): string {
    const session = this.stream.session as (http2.ServerHttp2Session & { [kScheme]?: string }) | undefined;
    if (session === undefined) return "http";
    // Once per connection: an http2 session's socket is a Proxy, slow to read through on every call.
    return (session[kScheme] ??= (session.socket as { encrypted?: boolean }).encrypted ? "https" : "http");
  }
  get authority(): string {
    return String(this.nodeHeaders[":authority"] ?? this.nodeHeaders.host);
  }
  get path(): string {
    return String(this.nodeHeaders[":path"]);
  }
  initialValues(values: CallValues): void {
    withCall(values, this.record);
  }

  /** Deadline (grpc-timeout, already cut to the server's maximum), shutdown, then the body. */
  start(grpcTimeout: string | string[] | undefined): void {
    const stream = this.stream;
    stream[kCall] = this;
    this.engine.active.add(this);
    stream.on("error", ignore); // a reset shows up as "close"; the call is counted there
    stream.on("close", onClose);
    stream.on("wantTrailers", onWantTrailers);
    const refusal = this.#refusal(grpcTimeout);
    if (refusal !== undefined) return this.refuse(refusal);
    stream.on("data", onData);
    stream.on("end", onEnd);
    this.begin();
  }

  /**
   * Why the body is not to be read: a malformed timeout (Connect raises it on
   * the first read of the body, which it then never reads), a deadline
   * already passed (answered unread on every protocol, see
   * src/http/request-guard.ts), or shutdown. Else the deadline starts.
   */
  #refusal(grpcTimeout: string | string[] | undefined): ConnectError | undefined {
    let timeoutMs: number | undefined;
    if (grpcTimeout !== undefined) {
      const timeout = parseTimeout(headerValue(grpcTimeout), this.engine.settings.maxTimeoutMs);
      if (timeout.error) return timeout.error;
      timeoutMs = timeout.timeoutMs;
    }
    const shutdown = this.engine.shutdownReason;
    if (shutdown !== undefined) return shutdown;
    if (timeoutMs === undefined) return undefined;
    if (timeoutMs <= 0) return deadlineExceeded();
    this.ctx.setDeadline(timeoutMs);
    this.#timer = setTimeout(onDeadline, timeoutMs, this);
    return undefined;
  }

  /** A unary call ends at once; a stream's handler starts, and its first read fails, as on connect-node's path. */
  protected refuse(error: ConnectError): void {
    this.fail(error, false);
  }

  /** A streaming call's request messages, as its handler reads them. */
  readonly input: MessageQueue<Message> | undefined = undefined;

  /** Whether the handler starts before the body is read: then errors reading it are the handler's. */
  abstract readonly streaming: boolean;

  /** Called once reading starts: streaming calls start the handler before their first message. */
  protected begin(): void {}
  abstract onData(chunk: Buffer): void;
  abstract onEnd(): void;
  /** The client reset the stream before the response ended. */
  protected onCancel(): void {}

  /** A request message, with Connect's checks and errors. */
  protected parse(envelope: Envelope): Message {
    assertUncompressed(envelope);
    return this.entry.serialization.getI(this.binary).parse(envelope.data) as Message;
  }

  /** Sends the response headers, once, as late as Connect does: with the first message or the status. */
  protected sendHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    const ctx = this.ctx;
    const headers = ctx.headerTouched ? wireHeaders(this.engine, ctx.responseHeader) : this.headers.wire.get(this.binary, this.compression);
    this.stream.respond(headers, { waitForTrailers: true });
  }

  /** A message's envelope; a promise only when it is compressed. */
  protected envelopeOf(message: Message): Uint8Array | Promise<Uint8Array> {
    if (this.compression === null) return this.entry.envelope(message, this.binary);
    const data = this.entry.encode(message, this.binary);
    if (data.byteLength < this.engine.settings.compressMinBytes) return this.entry.envelope(message, this.binary);
    return this.compression.compress(data).then((compressed) => envelope(compressedFlag, compressed));
  }

  /** Ends the response with grpc-status 0 (and the handler's trailers) after `last`, if any. */
  protected succeed(last?: Uint8Array): void {
    if (this.done) return;
    this.#finish();
    if (this.ctx.trailerTouched) this.#trailers = headersObject(this.ctx.responseTrailer);
    this.ctx.finish();
    this.sendHeaders();
    if (last === undefined) this.stream.end();
    else this.stream.end(last);
  }

  /** Ends the response with the error's status; `cause`: the service raised it (what the log's "reason" shows). */
  fail(error: unknown, cause: boolean): void {
    if (this.done) return;
    this.#finish();
    if (cause && this.record) this.record.cause = error;
    const status = asError(error);
    this.ctx.abort(status);
    this.#trailers = headersObject(setTrailerStatus(this.ctx.responseTrailer, status));
    if (this.stream.closed) return; // reset by the client: nobody to tell
    this.sendHeaders();
    this.stream.end();
  }

  abortCall(reason: ConnectError): void {
    this.fail(reason, true);
  }

  #finish(): void {
    this.done = true;
    clearTimeout(this.#timer);
    this.engine.active.delete(this);
  }

  sendTrailers(): void {
    this.stream.sendTrailers(this.#trailers);
    // A client still sending (its deadline passed, the server shuts down) has its stream reset once these are out.
    releaseAfterResponse(this.stream);
  }

  /** The stream is gone: count and log the call with the status the client was sent, CANCELLED if it reset the stream first. */
  closed(): void {
    if (!this.done) {
      this.#finish();
      this.ctx.abort(new ConnectError("the client cancelled the call", Code.Canceled));
      this.onCancel();
    }
    if (this.record === undefined) return;
    const sent = this.stream.sentTrailers?.["grpc-status"];
    const code = sent === undefined || this.stream.aborted ? Code.Canceled : Number(sent);
    this.engine.observability.callEnded(this.record, code, 200);
  }
}

/** One message in, after the whole body; one out. */
class UnaryGrpcCall extends GrpcCall implements UnaryReceiver {
  readonly streaming = false;
  #request: Message | undefined;
  #count = 0;

  onData(chunk: Buffer): void {
    try {
      for (const envelope of this.reader.push(chunk)) {
        const message = this.parse(envelope);
        if (++this.#count > 1) throw extraInput("unary");
        this.#request = message;
      }
    } catch (e) {
      this.fail(e, false);
    }
  }

  onEnd(): void {
    if (this.reader.incomplete) return this.fail(incompleteEnvelope(), false);
    if (this.#request === undefined) return this.fail(missingInput("unary"), false);
    const record = this.record;
    if (record) {
      record.reached = true;
      record.received = 1;
    }
    this.entry.invoker.unary(this.ctx, this.#request, this);
  }

  /** For the invoker: the handler or an interceptor threw. */
  failed(error: unknown): void {
    this.fail(error, true);
  }

  /** For the invoker: the handler's answer. */
  reply(output: Message): void {
    if (this.done) return;
    if (this.record) this.record.sent = 1;
    let bytes: Uint8Array | Promise<Uint8Array>;
    try {
      bytes = this.envelopeOf(output);
    } catch (e) {
      return this.fail(e, true);
    }
    if (bytes instanceof Promise) bytes.then((b) => this.succeed(b), (e: unknown) => this.fail(e, false));
    else this.succeed(bytes);
  }
}

/**
 * Server, client and bidi streams: the handler starts at once and reads the
 * request messages as they arrive; its messages go out as it yields them,
 * those of one turn of the event loop in one write.
 */
class StreamingGrpcCall extends GrpcCall {
  readonly streaming = true;
  override readonly input = new MessageQueue<Message>(this);
  #corked = false;

  protected override begin(): void {
    if (this.record) this.record.reached = true;
    void this.#run();
  }

  protected override refuse(error: ConnectError): void {
    this.input.fail(error);
    this.ctx.abort(error);
    this.begin();
  }

  async #run(): Promise<void> {
    try {
      const output = await this.entry.invoker.stream(this.ctx, this.input);
      // The handler's own iterator when no interceptor wrapped it (see NormalizedOutput).
      const source = output instanceof NormalizedOutput ? output.takeSource() : undefined;
      const it: AsyncIterator<unknown> = source ?? output[Symbol.asyncIterator]();
      const desc = this.entry.method.output;
      // Whether the loop left the iterator open (a break, a throw of its own), as for await tracks it.
      let open = false;
      try {
        for (;;) {
          open = false;
          const next = await it.next();
          if (next.done === true) break;
          open = true;
          if (this.done) break;
          const message = source === undefined ? (next.value as Message) : create(desc, next.value as never);
          if (this.record) this.record.sent++;
          // Awaited only when there is something to wait for: each await costs a turn of the microtask queue.
          let bytes = this.envelopeOf(message);
          if (bytes instanceof Promise) bytes = await bytes;
          const drained = this.#write(bytes);
          if (drained !== undefined) await drained;
          if (this.done) break;
        }
      } finally {
        // What for await does then: the handler's generator runs its finally blocks.
        if (open) await it.return?.();
      }
      this.#uncork();
      this.succeed();
    } catch (e) {
      this.#uncork();
      this.fail(e, true);
    }
  }

  /** Writes are corked until the current turn's work is done, so a burst of replies goes out as one. */
  #write(bytes: Uint8Array): Promise<void> | undefined {
    this.sendHeaders();
    if (!this.#corked) {
      this.#corked = true;
      this.stream.cork();
      process.nextTick(uncork, this);
    }
    if (this.stream.write(bytes)) return undefined;
    // Backpressure as Connect has it: nothing more is produced while the client does not read.
    return new Promise<void>((resolve) => {
      const go = () => {
        this.stream.off("drain", go);
        this.stream.off("close", go);
        resolve();
      };
      this.stream.on("drain", go);
      this.stream.on("close", go);
    });
  }

  #uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.stream.uncork();
  }

  uncorkNow(): void {
    this.#uncork();
  }

  onData(chunk: Buffer): void {
    try {
      for (const envelope of this.reader.push(chunk)) {
        this.input.push(this.parse(envelope));
      }
    } catch (e) {
      this.#stopReading();
      this.input.fail(e);
    }
  }

  onEnd(): void {
    if (this.reader.incomplete) this.input.fail(incompleteEnvelope());
    else this.input.end();
  }

  override fail(error: unknown, cause: boolean): void {
    if (this.done) return;
    super.fail(error, cause);
    this.input.fail(asError(error));
  }

  protected override onCancel(): void {
    this.input.fail(new ConnectError("the client cancelled the call", Code.Canceled));
  }

  /** The rest of a body that broke the protocol is read and dropped: a paused stream would never close. */
  #stopReading(): void {
    this.stream.off("data", onData);
    this.stream.resume();
  }

  /** For the input queue: the handler took a message (counted as connect-node's path counts them). */
  taken(): void {
    if (this.record) this.record.received++;
  }

  /** For the input queue: it holds enough messages the handler has not taken, or wants more. */
  pauseReading(): void {
    if (!this.done) this.stream.pause();
  }

  resumeReading(): void {
    if (!this.done) this.stream.resume();
  }
}

function uncork(call: StreamingGrpcCall): void {
  call.uncorkNow();
}

/** Response headers a handler or interceptor set, with the request guard's grpc-accept-encoding. */
function wireHeaders(engine: Engine, headers: Headers): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = { ":status": 200, "grpc-accept-encoding": engine.acceptEncodings };
  headers.forEach((value, key) => (out[key] = value));
  return out;
}

function headersObject(headers: Headers): http2.OutgoingHttpHeaders {
  const out: http2.OutgoingHttpHeaders = {};
  headers.forEach((value, key) => (out[key] = value));
  return out;
}

// A reset by the client closes the stream, then ends its body: that end is not the client's.
function onData(this: Stream, chunk: Buffer): void {
  const call = this[kCall];
  if (call !== undefined && !call.done && !this.closed) call.onData(chunk);
}

function onEnd(this: Stream): void {
  const call = this[kCall];
  if (call !== undefined && !call.done && !this.closed) call.onEnd();
}

function onWantTrailers(this: Stream): void {
  if (!this.closed) this[kCall]?.sendTrailers();
}

/**
 * The call is over: the stream lets go of it. Node's session keeps the
 * stream where V8 promotes it (see ActiveCalls), and the call, its context
 * and its messages would go to the old generation with it.
 */
function onClose(this: Stream): void {
  const call = this[kCall];
  this[kCall] = undefined;
  call?.closed();
}

/**
 * The deadline is the handler's error once the call reached it; before, the
 * body's reading failed. A handler gets its signal aborted first, and a turn
 * to answer with its own error (and its interceptors' metadata), as on
 * connect-node's path; then the deadline ends the call regardless.
 */
function onDeadline(call: GrpcCall): void {
  if (call.record?.reached !== true) return call.fail(deadlineExceeded(), false);
  call.ctx.abort(deadlineExceeded());
  call.input?.fail(deadlineExceeded());
  setImmediate(deadlineAfterAbort, call);
}

function deadlineAfterAbort(call: GrpcCall): void {
  call.fail(deadlineExceeded(), true);
}

function ignore(): void {}
