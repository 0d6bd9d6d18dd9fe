import type http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  createMethodUrl,
  type Serialization,
} from "@connectrpc/connect/protocol";
import { contentTypeProto, grpcStatusOk, parseTimeout, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import type { Person } from "../gen/person_pb.js";
import { type Name, RouteGuide } from "../gen/route_guide_pb.js";
import { createCorsMiddleware } from "./http/cors.js";
import type { Directory } from "./routeguide/directory.js";
import { assertUncompressed, type Envelope, EnvelopeCache, EnvelopeSplitter } from "./engine/envelopes.js";
import { capDeadline } from "./transport/limits.js";
import { releaseAfterResponse, type StreamHandler } from "./transport/listener.js";
import type { Call, Observability } from "./observability/calls.js";
import { assertHonoured, type FastUnaryOptions, routerSettings } from "./fast-unary.js";
import { createRequestGuard } from "./http/request-guard.js";
import { personInStream, personNamed } from "./routeguide/service.js";

export interface FastGrpcOptions extends FastUnaryOptions {
  /** Longest deadline a call gets (0: none), as src/transport/limits.ts's capDeadline applies it. */
  maxDeadlineMs: number;
  /** As the CORS middleware has them: fast responses carry the headers it adds. */
  corsOrigins: string[];
}

/**
 * RouteGuide over gRPC straight on node:http2 streams, for speed: Connect's
 * path spends most of a call in its async-iterable pipeline, AbortSignals and
 * the compat layer (README, Performance). It answers what Connect answers,
 * byte for byte, with the same service logic, limits, deadlines, shutdown,
 * logs and metrics; test/fast-path.test.ts proves it against Connect's own
 * path. It takes a stream only when its headers show nothing it does not do
 * itself (gRPC-Web, Connect, JSON, request compression, browsers, other
 * methods): those go on to Connect, unread. For the listener's `onStream`.
 */
export function createFastGrpc(options: FastGrpcOptions): StreamHandler {
  const { connect } = options;
  assertHonoured("src/fast-grpc.ts", connect, options.observability, [
    EnvelopeCache.unsupported(connect.acceptCompression),
  ]);
  const server = new FastGrpc(options);
  return (stream, headers) => server.take(stream, headers);
}

type Kind = "unary" | "bidi";

class FastGrpc {
  readonly directory: Directory;
  readonly observability: Observability;
  readonly readMaxBytes: number;
  readonly maxDeadlineMs: number;
  readonly maxTimeoutMs: number;
  readonly shutdownSignal: AbortSignal | undefined;
  readonly #acceptCompression: Compression[];
  /** Name's parser with Connect's own limits and error messages ("parse binary: ..."). */
  readonly parseName: Serialization<Name>["parse"];
  readonly people: EnvelopeCache<Person>;
  /** The response headers, per response compression: what the Connect path sends before its first message. */
  readonly #headers = new Map<string, http2.OutgoingHttpHeaders>();
  readonly #kinds: ReadonlyMap<string, Kind>;
  /** Calls still open, so shutdown can end them. */
  readonly active = new Set<FastCall>();
  readonly #negotiated = new Map<string, Compression | null>();
  readonly #peers = new WeakMap<http2.Http2Session, string | undefined>();

  constructor(options: FastGrpcOptions) {
    this.directory = options.directory;
    this.observability = options.observability;
    this.maxDeadlineMs = options.maxDeadlineMs;
    const { limits, maxTimeoutMs, shutdownSignal, acceptCompression } = routerSettings(options.connect);
    this.maxTimeoutMs = maxTimeoutMs;
    this.shutdownSignal = shutdownSignal;
    this.#acceptCompression = acceptCompression;
    this.readMaxBytes = limits.readMaxBytes;
    const getPerson = RouteGuide.method.getPerson;
    const serialization = createMethodSerializationLookup(getPerson, undefined, undefined, limits);
    this.parseName = serialization.getI(true).parse;
    const serializePerson = serialization.getO(true).serialize;
    this.people = new EnvelopeCache<Person>((person) => serializePerson(person), limits.compressMinBytes);
    this.#kinds = new Map<string, Kind>([
      [createMethodUrl("/", getPerson), "unary"],
      [createMethodUrl("/", RouteGuide.method.getPeople), "bidi"],
    ]);
    const pipeline = pipelineHeaders(options.corsOrigins, {
      maxDeadlineMs: this.maxDeadlineMs,
      acceptEncodings: this.#acceptCompression.map((c) => c.name),
    });
    for (const compression of [null, ...this.#acceptCompression]) {
      this.#headers.set(
        compression?.name ?? "identity",
        Object.freeze({
          ":status": 200,
          ...pipeline,
          "content-type": contentTypeProto,
          ...(compression && { "grpc-encoding": compression.name }),
        }),
      );
    }
    const shutdown = this.shutdownSignal;
    shutdown?.addEventListener("abort", () => {
      const reason = ConnectError.from(shutdown.reason);
      for (const call of this.active) call.fail(reason, true);
    });
  }

  /** Answers the stream and returns true, or returns false without touching it. */
  take(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): boolean {
    const path = headers[":path"];
    const kind = path === undefined ? undefined : this.#kinds.get(path);
    if (kind === undefined || headers[":method"] !== "POST") return false;
    const type = headers["content-type"];
    if (type !== "application/grpc" && type !== contentTypeProto) return false;
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") return false;
    // Browsers (CORS may depend on their Origin) and requests the guard rejects for a missing authority.
    if (headers.origin !== undefined || (headers[":authority"] === undefined && headers.host === undefined)) return false;
    const compression = this.#responseCompression(headers["grpc-accept-encoding"]);

    // The request guard's rewrite (the server's maximum, a Node timer's), before Connect's parseTimeout reads it.
    capDeadline(headers, this.maxDeadlineMs);
    const call = this.observability.callStarted(path!, "grpc", "2.0", this.#peer(stream.session));
    const fast = kind === "unary" ? new UnaryCall(this, stream, call, compression) : new BidiCall(this, stream, call, compression);
    fast.start(headers["grpc-timeout"]);
    return true;
  }

  headersFor(compression: Compression | null): http2.OutgoingHttpHeaders {
    return this.#headers.get(compression?.name ?? "identity")!;
  }

  /** Connect's negotiation on grpc-accept-encoding (assertHonoured made sure the cache can produce each). */
  #responseCompression(accept: string | string[] | undefined): Compression | null {
    const value = accept === undefined ? null : typeof accept === "string" ? accept : accept.join(", ");
    if (value === null) return null;
    let compression = this.#negotiated.get(value);
    if (compression === undefined) {
      compression = compressionNegotiate(this.#acceptCompression, null, value, "grpc-accept-encoding").response;
      // Clients send a handful of distinct values; bound the memo anyway.
      if (this.#negotiated.size < 64) this.#negotiated.set(value, compression);
    }
    return compression;
  }

  /** The log's peer, as observability.ts writes it; one lookup per connection. */
  #peer(session: http2.Http2Session | undefined): string | undefined {
    if (session === undefined) return undefined;
    if (this.#peers.has(session)) return this.#peers.get(session);
    const { remoteAddress, remotePort } = session.socket;
    const peer =
      remoteAddress === undefined
        ? undefined
        : remoteAddress.includes(":")
          ? `[${remoteAddress}]:${remotePort}`
          : `${remoteAddress}:${remotePort}`;
    this.#peers.set(session, peer);
    return peer;
  }
}

const kCall = Symbol("fast-grpc.call");
type Stream = http2.ServerHttp2Stream & { [kCall]?: FastCall };

const okTrailers: http2.OutgoingHttpHeaders = Object.freeze({ "grpc-status": grpcStatusOk });

/** One call on one stream. Listeners are shared functions that find the call on the stream: no closures per call. */
abstract class FastCall {
  /** Set once the response's end (trailers) is decided; later events are ignored. */
  done = false;
  #headersSent = false;
  #trailers = okTrailers;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly server: FastGrpc,
    readonly stream: Stream,
    readonly call: Call | undefined,
    readonly compression: Compression | null,
  ) {}

  /** Deadline (grpc-timeout, already cut to the server's maximum), shutdown, then the body. */
  start(grpcTimeout: string | string[] | undefined): void {
    const stream = this.stream;
    stream[kCall] = this;
    this.server.active.add(this);
    stream.on("error", ignore); // a reset shows up as "close"; the call is counted there
    stream.on("close", onClose);
    stream.on("wantTrailers", onWantTrailers);
    let timeoutMs: number | undefined;
    if (grpcTimeout !== undefined) {
      const timeout = parseTimeout(typeof grpcTimeout === "string" ? grpcTimeout : grpcTimeout.join(", "), this.server.maxTimeoutMs);
      if (timeout.error) {
        // Connect raises it on the first read of the body, which it then never reads.
        this.fail(timeout.error, this.readErrorsAreCauses);
        return;
      }
      timeoutMs = timeout.timeoutMs;
    }
    const shutdown = this.server.shutdownSignal;
    if (shutdown?.aborted) {
      this.fail(ConnectError.from(shutdown.reason), true);
      return;
    }
    if (timeoutMs !== undefined) {
      if (timeoutMs <= 0) {
        this.fail(deadlineExceeded(), true);
        return;
      }
      this.#timer = setTimeout(onDeadline, timeoutMs, this);
    }
    stream.on("data", onData);
    stream.on("end", onEnd);
  }

  /** Whether errors reading the request count as the service's (bidi: they surface through its iterator). */
  abstract readonly readErrorsAreCauses: boolean;
  abstract onData(chunk: Buffer): void;
  abstract onEnd(): void;

  /** A request message, with the Connect path's checks and errors. */
  protected parse(envelope: Envelope): Name {
    assertUncompressed(envelope);
    return this.server.parseName(envelope.data);
  }

  /** Sends the response headers, once, as late as Connect does: with the first message or the status. */
  protected sendHeaders(): void {
    if (this.#headersSent) return;
    this.#headersSent = true;
    this.stream.respond(this.server.headersFor(this.compression), { waitForTrailers: true });
  }

  /** Ends the response with grpc-status 0 after `last` (if any). */
  protected succeed(last?: Buffer): void {
    if (this.done) return;
    this.#finish();
    this.sendHeaders();
    if (last === undefined) this.stream.end();
    else this.stream.end(last);
  }

  /** Ends the response with the error's status; `cause`: the service raised it (what the log's "reason" shows). */
  fail(error: unknown, cause: boolean): void {
    if (this.done) return;
    this.#finish();
    if (cause && this.call) this.call.cause = error;
    // Connect answers anything but a ConnectError with "internal error", the original kept as the cause.
    const status =
      error instanceof ConnectError ? error : new ConnectError("internal error", Code.Internal, undefined, undefined, error);
    this.#trailers = Object.fromEntries(setTrailerStatus(new Headers(), status));
    if (this.stream.closed) return; // reset by the client: nobody to tell
    this.sendHeaders();
    this.stream.end();
  }

  #finish(): void {
    this.done = true;
    clearTimeout(this.#timer);
    this.server.active.delete(this);
  }

  sendTrailers(): void {
    this.stream.sendTrailers(this.#trailers);
    // A client still sending (its deadline passed, the server shuts down) has its stream reset once these are out.
    releaseAfterResponse(this.stream);
  }

  /** The stream is gone: count and log the call with the status the client was sent, CANCELLED if it reset the stream first. */
  closed(): void {
    this.#finish();
    if (this.call === undefined) return;
    const sent = this.stream.sentTrailers?.["grpc-status"];
    const code = sent === undefined || this.stream.aborted ? Code.Canceled : Number(sent);
    this.server.observability.callEnded(this.call, code, 200);
  }
}

/** GetPerson: one message in, after the whole body; one Person out. */
class UnaryCall extends FastCall {
  readonly readErrorsAreCauses = false;
  readonly #reader = new EnvelopeSplitter(this.server.readMaxBytes);
  #request: Name | undefined;
  #count = 0;

  onData(chunk: Buffer): void {
    try {
      for (const envelope of this.#reader.push(chunk)) {
        const name = this.parse(envelope);
        if (++this.#count > 1) {
          throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
        }
        this.#request = name;
      }
    } catch (e) {
      this.fail(e, false);
    }
  }

  onEnd(): void {
    if (this.#reader.incomplete) {
      return this.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument), false);
    }
    if (this.#request === undefined) {
      return this.fail(
        new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented),
        false,
      );
    }
    if (this.call) {
      this.call.reached = true;
      this.call.received = 1;
    }
    let person: Person;
    try {
      person = personNamed(this.server.directory, this.#request.name);
    } catch (e) {
      return this.fail(e, true);
    }
    if (this.call) this.call.sent = 1;
    this.succeed(this.server.people.get(person, this.compression));
  }
}

/** GetPeople: a Person for each known name, as each chunk of names arrives; unknown names are skipped. */
class BidiCall extends FastCall {
  readonly readErrorsAreCauses = true;
  readonly #reader = new EnvelopeSplitter(this.server.readMaxBytes);

  onData(chunk: Buffer): void {
    const call = this.call;
    // The replies to one chunk of names go out in one write: the same bytes as one write each, for less CPU.
    let replies: Buffer[] | undefined;
    let error: unknown;
    try {
      for (const envelope of this.#reader.push(chunk)) {
        const { name } = this.parse(envelope);
        if (call) call.received++;
        const person = personInStream(this.server.directory, name);
        if (person === undefined) continue;
        (replies ??= []).push(this.server.people.get(person, this.compression));
        if (call) call.sent++;
      }
    } catch (e) {
      error = e;
    }
    if (replies !== undefined) {
      this.sendHeaders();
      // Backpressure as Connect has it: no more names are read while the client does not read its replies.
      if (!this.stream.write(replies.length === 1 ? replies[0] : Buffer.concat(replies))) {
        this.stream.pause();
        this.stream.once("drain", onDrain);
      }
    }
    if (error !== undefined) this.fail(error, true);
  }

  onEnd(): void {
    if (this.#reader.incomplete) {
      return this.fail(new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument), true);
    }
    this.succeed();
  }
}

// A reset by the client closes the stream, then ends its body: that end is not the client's.
function onData(this: Stream, chunk: Buffer): void {
  const call = this[kCall]!;
  if (!call.done && !this.closed) call.onData(chunk);
}

function onEnd(this: Stream): void {
  const call = this[kCall]!;
  if (!call.done && !this.closed) call.onEnd();
}

function onWantTrailers(this: Stream): void {
  if (!this.closed) this[kCall]!.sendTrailers();
}

function onClose(this: Stream): void {
  this[kCall]!.closed();
}

function onDrain(this: Stream): void {
  if (!this[kCall]!.done) this.resume();
}

function onDeadline(call: FastCall): void {
  call.fail(deadlineExceeded(), true);
}

/** Connect's deadline error (createDeadlineSignal), as the service's signal carries it. */
function deadlineExceeded(): ConnectError {
  return new ConnectError("the operation timed out", Code.DeadlineExceeded);
}

function ignore(): void {}

/**
 * The headers the Connect path's request pipeline (CORS, then the request
 * guard) sets on a gRPC request without Origin, every gRPC client's, so fast
 * responses carry the same. Captured once, by running the same middleware on
 * a stand-in request.
 */
function pipelineHeaders(origins: string[], guard: Parameters<typeof createRequestGuard>[0]): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    getHeader: (name: string) => headers[name.toLowerCase()],
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = String(value);
    },
  };
  const request = {
    method: "POST",
    url: createMethodUrl("/", RouteGuide.method.getPerson),
    authority: "localhost",
    httpVersionMajor: 2,
    headers: { ":authority": "localhost", "content-type": "application/grpc" },
  };
  let passed = false;
  createCorsMiddleware(origins)(request as never, response as never, () => {
    passed = createRequestGuard(guard)(request as never, response as never);
  });
  if (!passed) throw new Error("the request pipeline did not pass a plain gRPC request through synchronously");
  return headers;
}
