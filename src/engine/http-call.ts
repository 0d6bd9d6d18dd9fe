import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { deadlineExceeded } from "./errors.js";
import type { Call } from "../observability/calls.js";
import { type CallSource, type CallValues, EngineContext } from "./context.js";
import type { UnaryReceiver } from "./invoke.js";
import { withCall } from "../observability/calls.js";
import { headerValue } from "./headers.js";
import { endAtTurnEnd } from "./turn-writes.js";
import { ActiveCall, type Engine, type MethodEntry } from "./engine.js";

export type Request = IncomingMessage | Http2ServerRequest;
export type Response = ServerResponse | Http2ServerResponse;

/** Answers a request and returns true, or returns false having touched nothing, for connect-node to answer. */
export type HttpProtocol = (req: Request, res: Response) => boolean;

const kCall = Symbol("engine.http.call");
type TaggedRequest = Request & { [kCall]?: HttpCall };
type TaggedResponse = Response & { [kCall]?: HttpCall };

/**
 * A unary call on Node's request/response API (Connect, gRPC-Web): its
 * context, its deadline, and its body as it arrives. The body's listeners
 * are shared functions that find the call on the request: no closures per call.
 */
export abstract class HttpCall extends ActiveCall implements CallSource, UnaryReceiver {
  readonly ctx: EngineContext;
  readonly record: Call | undefined;
  done = false;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly engine: Engine,
    readonly entry: MethodEntry,
    readonly req: Request,
    readonly res: Response,
    protocolName: string,
    responseHeader: Readonly<Record<string, string>>,
    responseTrailer: Readonly<Record<string, string>>,
  ) {
    super();
    this.record = engine.observability.callOf(req);
    engine.observability.metrics.engineServed(protocolName === "grpc-web" ? "grpc-web" : "connect");
    this.ctx = new EngineContext(this, entry.method, protocolName, req.method ?? "", responseHeader, responseTrailer);
    engine.active.add(this);
    // The response's end, however it comes, ends the call: a client that goes away aborts its context.
    (res as TaggedResponse)[kCall] = this;
    res.on("close", onResponseClose);
  }

  // The context's source (CallSource): read only when a handler or interceptor asks.
  get nodeHeaders(): Request["headers"] {
    return this.req.headers;
  }
  get scheme(): string {
    return (this.req.socket as { encrypted?: boolean }).encrypted ? "https" : "http";
  }
  get authority(): string {
    return ("authority" in this.req ? this.req.authority : this.req.headers.host) ?? "";
  }
  get path(): string {
    return this.req.url ?? "";
  }
  initialValues(values: CallValues): void {
    withCall(values, this.record);
  }

  /** Starts the call's deadline; false when it has already passed (the caller answers DEADLINE_EXCEEDED unread). */
  startDeadline(timeoutMs: number | undefined): boolean {
    if (timeoutMs === undefined) return true;
    if (timeoutMs <= 0) return false;
    this.ctx.setDeadline(timeoutMs);
    this.#timer = setTimeout(onDeadline, timeoutMs, this);
    return true;
  }

  abstract onData(chunk: Buffer): void;
  abstract onEnd(): void;
  abstract reply(output: Message): void;
  /** Answers with the error; `fromService`: raised inside the router (the log's reason). */
  abstract fail(error: unknown, fromService?: boolean): void;

  /** For the invoker: the handler or an interceptor threw. */
  failed(error: unknown): void {
    this.fail(error, true);
  }

  /** The deadline is the handler's error once the call reached it; before, the body's reading failed. */
  onDeadline(): void {
    this.stopReading();
    this.fail(deadlineExceeded(), this.record?.reached === true);
  }

  abortCall(reason: ConnectError): void {
    this.stopReading();
    this.fail(reason, true);
  }

  /** Marks the call as answered: no more deadline, no more shutdown. */
  protected settle(): boolean {
    if (this.done) return false;
    this.done = true;
    clearTimeout(this.#timer);
    this.engine.active.delete(this);
    return true;
  }

  closed(): void {
    if (this.settle()) {
      this.stopReading();
      this.ctx.abort(new ConnectError("the client cancelled the call", Code.Canceled));
    }
  }

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
   * Stops reading a body that broke the protocol, as connect-node does:
   * Node's server discards the rest once the answer is out, so an HTTP/1.1
   * connection stays usable.
   */
  abandonBody(): void {
    this.stopReading();
  }

  /**
   * The handler's answer, encoded, with the call settled: undefined when
   * the call already ended or the encoding failed (then answered as the error).
   */
  protected settleReply(output: Message, binary: boolean): Uint8Array | undefined {
    if (this.done) return undefined;
    let bytes: Uint8Array;
    try {
      bytes = this.entry.encode(output, binary);
    } catch (e) {
      this.fail(e, true);
      return undefined;
    }
    if (this.record !== undefined) this.record.sent = 1;
    if (!this.settle()) return undefined;
    this.ctx.finish();
    return bytes;
  }

  /** Ends the response with its body, its head written: on HTTP/1.1 at the turn's end (src/engine/turn-writes.ts), as HTTP/2's session does itself. */
  protected endResponse(body: Uint8Array | string): void {
    if (this.req.httpVersionMajor === 1) endAtTurnEnd(this.res as ServerResponse, body);
    else this.res.end(body);
  }

  /** What the service threw, for the line per RPC; and that the call reached it. */
  reached(): void {
    if (this.record !== undefined) {
      this.record.reached = true;
      this.record.received = 1;
    }
  }
}

function onResponseClose(this: TaggedResponse): void {
  this[kCall]!.closed();
}

function onBodyData(this: TaggedRequest, chunk: Buffer): void {
  const call = this[kCall]!;
  if (!call.done) call.onData(chunk);
}

function onBodyEnd(this: TaggedRequest): void {
  const call = this[kCall]!;
  if (!call.done) call.onEnd();
}

/**
 * At the deadline a call that reached its handler has its signal aborted
 * first, and its handler and interceptors a turn to answer with their own
 * error (their headers and metadata), as on connect-node's path; then the
 * deadline ends the call regardless.
 */
function onDeadline(call: HttpCall): void {
  if (call.record?.reached !== true) return call.onDeadline();
  call.ctx.abort(deadlineExceeded());
  setImmediate(deadlineAfterAbort, call);
}

function deadlineAfterAbort(call: HttpCall): void {
  if (!call.done) call.onDeadline();
}

function ignore(): void {}

/** A header as Connect's Headers.get() sees it. */
export function header(req: Request, name: string): string | null {
  return headerValue(req.headers[name]);
}

/** Headers as Node's writeHead takes them. */
export function headersObject(headers: Headers, into: Record<string, string | number> = {}): Record<string, string | number> {
  headers.forEach((value, key) => (into[key] = value));
  return into;
}
