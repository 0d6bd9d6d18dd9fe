import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import { validateReadWriteMaxBytes } from "@connectrpc/connect/protocol";
import { compressionBrotli, compressionGzip, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import type { Person } from "../gen/person_pb.js";
import type { Directory } from "./routeguide/directory.js";
import type { Observability } from "./observability/calls.js";
import { personNamed } from "./routeguide/service.js";

/**
 * What the fast paths for unary calls on Node's request/response API
 * (src/fast-connect.ts, src/fast-grpc-web.ts) have in common: how they are
 * plugged into the pipeline, how they read a body, and how they see the
 * deadline and shutdown as the service's context would. Their options and
 * the check of router settings serve the gRPC fast path (src/fast-grpc.ts) too.
 */

export type Request = IncomingMessage | Http2ServerRequest;
export type Response = ServerResponse | Http2ServerResponse;

/** Answers a request and returns true, or returns false having touched nothing, for connect-node to answer. */
export type FastPath = (req: Request, res: Response) => boolean;

/** The router's settings (server.ts's `connect` slot), which a fast path applies as connect-node does. */
export type ConnectOptions = Omit<ConnectNodeAdapterOptions, "routes" | "fallback">;

/** The router settings every fast path applies, with connectNodeAdapter's defaults where none is given. */
export function routerSettings(connect: ConnectOptions) {
  return {
    limits: validateReadWriteMaxBytes(connect.readMaxBytes, connect.writeMaxBytes, connect.compressMinBytes),
    maxTimeoutMs: connect.maxTimeoutMs ?? Number.MAX_SAFE_INTEGER,
    shutdownSignal: connect.shutdownSignal,
    acceptCompression: connect.acceptCompression ?? [compressionGzip, compressionBrotli],
  };
}

export interface FastUnaryOptions {
  directory: Directory;
  /** The router's settings: the fast path applies the same limits and compressions. */
  connect: ConnectOptions;
  /** Counts and logs fast-path calls as its interceptor does for connect-node's. */
  observability: Observability;
}

const kCall = Symbol("fast-unary.call");
type TaggedRequest = Request & { [kCall]?: UnaryCall };

/** One call a fast path took: its request and response, its deadline, and its body as it arrives. */
export abstract class UnaryCall {
  /** Connect starts the deadline when the call starts, before the body arrives. */
  readonly startMs = performance.now();
  timeoutMs: number | undefined = undefined;

  constructor(
    readonly req: Request,
    readonly res: Response,
  ) {}

  abstract onData(chunk: Buffer): void;
  abstract onEnd(): void;

  /**
   * Feeds the body to onData and onEnd. The listeners are shared functions
   * that find the call on the request, so a call allocates no closures
   * (tsx names every closure it creates, at a cost per call).
   */
  readBody(): void {
    (this.req as TaggedRequest)[kCall] = this;
    // A client that goes away mid-body: nobody is left to answer, and the call is logged as canceled.
    this.req.on("error", ignore);
    this.req.on("data", onBodyData);
    this.req.on("end", onBodyEnd);
  }

  stopReading(): void {
    this.req.off("data", onBodyData);
    this.req.off("end", onBodyEnd);
  }

  /**
   * Stops reading a body that broke the protocol, as connect-node does. The
   * rest stays unread, so an HTTP/1.1 connection cannot carry another
   * request: connect-node answers keep-alive and leaves the connection
   * stalled; this answers "connection: close", and Node closes it after the
   * answer. HTTP/2 streams are released by src/transport/listener.ts either way.
   */
  abandonBody(): void {
    this.stopReading();
    this.req.pause();
    if (this.req.httpVersionMajor === 1) this.res.setHeader("connection", "close");
  }

  /**
   * What the service's `ctx.signal` says when it is called (getPerson
   * checks it): the call's deadline, else the server's shutdown signal,
   * with Connect's own reasons.
   */
  abortReason(shutdownSignal: AbortSignal | undefined): ConnectError | undefined {
    if (this.timeoutMs !== undefined && performance.now() - this.startMs >= this.timeoutMs) {
      return new ConnectError("the operation timed out", Code.DeadlineExceeded);
    }
    return shutdownSignal?.aborted ? ConnectError.from(shutdownSignal.reason) : undefined;
  }
}

/**
 * GetPerson for a call whose one message has arrived, recorded as the
 * observability interceptor records it on connect-node's path: the service
 * sees the deadline and shutdown as `ctx.signal` would, and its error (thrown
 * on to the caller) is the call's cause.
 */
export function observedGetPerson(
  { directory, observability }: FastUnaryOptions,
  call: UnaryCall,
  shutdownSignal: AbortSignal | undefined,
  name: string,
): Person {
  const record = observability.callOf(call.req);
  if (record !== undefined) {
    record.reached = true;
    record.received = 1;
  }
  try {
    const aborted = call.abortReason(shutdownSignal);
    if (aborted !== undefined) throw aborted;
    const person = personNamed(directory, name);
    if (record !== undefined) record.sent = 1;
    return person;
  } catch (e) {
    if (record !== undefined) record.cause = e;
    throw e;
  }
}

function onBodyData(this: TaggedRequest, chunk: Buffer): void {
  this[kCall]!.onData(chunk);
}

function onBodyEnd(this: TaggedRequest): void {
  this[kCall]!.onEnd();
}

function ignore(): void {}

/** A header as Connect's Headers.get() sees it: Node joins repeated ones with ", " as fetch's Headers does. */
export function header(req: Request, name: string): string | null {
  const value = req.headers[name];
  return value === undefined ? null : Array.isArray(value) ? value.join(", ") : value;
}

/** Whether `url` is `path`, with or without a query (which Connect ignores on POST). */
export function isPath(url: string, path: string): boolean {
  return url.startsWith(path) && (url.length === path.length || url.charCodeAt(path.length) === 0x3f /* ? */);
}

/**
 * Refuses to start a fast path with router settings it would silently skip:
 * interceptors other than observability's (whose work it does itself), a
 * request gate, and whatever `others` names.
 */
export function assertHonoured(
  file: string,
  connect: ConnectOptions,
  observability: Observability,
  others: Array<string | false> = [],
): void {
  const unknown = (connect.interceptors ?? []).filter((i) => i !== observability.interceptor);
  const skipped = [
    unknown.length > 0 && "interceptors",
    connect.requestGate !== undefined && "requestGate",
    connect.binaryOptions !== undefined && "binaryOptions",
    connect.requestPathPrefix !== undefined && "requestPathPrefix",
    ...others,
  ].filter((s) => s !== false);
  if (skipped.length > 0) {
    throw new Error(`the fast path in ${file} does not apply ${skipped.join(", ")}: teach it to, or start with --no-fast-path`);
  }
}
