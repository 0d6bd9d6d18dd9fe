import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ContextValues,
  type Interceptor,
} from "@connectrpc/connect";
import { pathOf } from "../engine/headers.js";
import type { RouteTable } from "../engine/route-table.js";
import type { RequestHandler } from "../transport/listener.js";
import { infoLineWriter, type Logger } from "./logging.js";
import { type CallTally, protocols, type Protocol, ServerMetrics } from "./metrics.js";

type NodeRequest = IncomingMessage | Http2ServerRequest;
type NodeResponse = ServerResponse | Http2ServerResponse;

/** One procedure over one protocol: where its calls are counted and logged. */
interface Channel {
  readonly observability: Observability;
  readonly method: DescMethod;
  readonly tally: CallTally;
  /** Carries procedure and protocol, which pino serialises once here instead of on every line. */
  readonly log: Logger;
  readonly writeInfo: (fields: string) => void;
}

/** One RPC, from its request's arrival to its response's end. */
export class Call {
  /** Messages read from the request and written to the response. */
  received = 0;
  sent = 0;
  /** Whether the router handed the call to the service (it was not refused while being read). */
  reached = false;
  /** What the service threw, if it did. */
  cause: unknown = undefined;
  /** The call's span when tracing is on (src/observability/tracing.ts sets them): join the line to the trace. */
  traceId: string | undefined = undefined;
  spanId: string | undefined = undefined;

  constructor(
    readonly channel: Channel,
    readonly startMs: number,
    readonly httpVersion: string,
    readonly peer: string | undefined,
  ) {}
}

const kCall = Symbol("routeguide.call");
type Tagged<T> = T & { [kCall]?: Call };
export const callKey = createContextKey<Call | undefined>(undefined, { description: "the call being observed" });

/**
 * Logs and metrics for every RPC, whatever its protocol. The HTTP layer sees
 * each call start and end (including calls refused before they reach the
 * service, and clients that go away); a Connect interceptor adds what only
 * the router knows: the service's error and the stream messages.
 * A handler outside Connect reports through callStarted()/callEnded().
 */
export class Observability {
  readonly metrics = new ServerMetrics();
  private readonly channels = new Map<string, Record<Protocol, Channel>>();

  constructor(
    table: RouteTable,
    private readonly logger: Logger,
  ) {
    for (const { requestPath, method } of table.handlers.values()) {
      const byProtocol = {} as Record<Protocol, Channel>;
      for (const protocol of protocols) {
        const log = logger.child({ procedure: requestPath, protocol });
        byProtocol[protocol] = {
          observability: this,
          method,
          tally: this.metrics.tally(method, protocol),
          log,
          writeInfo: infoLineWriter(log, "rpc"),
        };
      }
      this.channels.set(requestPath, byProtocol);
    }
  }

  /** Starts observing a call to `path`; undefined when `path` is not a procedure. */
  callStarted(path: string, protocol: Protocol, httpVersion: string, peer?: string): Call | undefined {
    const channel = this.channels.get(path)?.[protocol];
    if (channel === undefined) return undefined;
    channel.tally.callStarted();
    return new Call(channel, performance.now(), httpVersion, peer);
  }

  /** Counts and logs the end of a call with the status the client was sent. */
  callEnded(call: Call, code: Code | 0, httpStatus: number): void {
    const ms = performance.now() - call.startMs;
    const { tally, log, method } = call.channel;
    tally.callEnded(code, ms / 1000, call.received, call.sent);
    // A failure the service raised itself is ours to fix; anything else is the client's doing.
    if (call.cause !== undefined && (code === Code.Internal || code === Code.Unknown || code === Code.DataLoss)) {
      if (!log.isLevelEnabled("error")) return;
      const { httpVersion: http, peer, received, sent, cause: err, traceId: trace_id, spanId: span_id } = call;
      const fields = { http, code: codeName(code), status: httpStatus, ms: round(ms), peer, trace_id, span_id, err };
      log.error(method.methodKind === "unary" ? fields : { ...fields, received, sent }, "rpc");
      return;
    }
    if (!log.isLevelEnabled("info")) return;
    // The same fields, built as JSON directly: every value but the reason is known to need no escaping.
    let fields = `"http":"${call.httpVersion}","code":"${codeName(code)}","status":${httpStatus},"ms":${round(ms)}`;
    if (call.peer !== undefined) fields += `,"peer":"${call.peer}"`;
    if (call.traceId !== undefined) fields += `,"trace_id":"${call.traceId}","span_id":"${call.spanId}"`;
    if (method.methodKind !== "unary") fields += `,"received":${call.received},"sent":${call.sent}`;
    if (call.cause !== undefined) fields += `,"reason":${JSON.stringify(ConnectError.from(call.cause).rawMessage)}`;
    call.channel.writeInfo(fields);
  }

  /**
   * The call observe() started for this request, for a handler that answers
   * it without Connect's interceptor (the engine, src/engine/): it fills in what
   * the interceptor would (reached, received, sent, cause).
   */
  callOf(req: NodeRequest): Call | undefined {
    return (req as Tagged<NodeRequest>)[kCall];
  }

  /** Wraps the whole request pipeline, so calls are timed from arrival to the response's end. */
  observe(handler: RequestHandler): RequestHandler {
    return (req: Tagged<NodeRequest>, res: Tagged<NodeResponse>) => {
      if (req.method === "POST" || req.method === "GET") {
        const call = this.callStarted(
          pathOf(req.url),
          protocolOf(req),
          req.httpVersion,
          this.logger.isLevelEnabled("error") ? peerOf(req) : undefined,
        );
        if (call !== undefined) {
          req[kCall] = res[kCall] = call;
          res.on("close", onResponseClose);
        }
      }
      handler(req, res);
    };
  }

  /** For connect-node's `contextValues`: hands the call to the interceptor. */
  readonly contextValues = (req: NodeRequest): ContextValues => withCall(createContextValues(), this.callOf(req));

}

/** A call's context values: interceptors find its record there (tracing adds its ids to the line). */
export function withCall(values: ContextValues, call: Call | undefined): ContextValues {
  if (call !== undefined) values.set(callKey, call);
  return values;
}

/**
 * On connect-node's path: records the service's error and counts the
 * messages of streams, in the call observe() started. The engine records
 * the same itself.
 */
export const recordingInterceptor: Interceptor = (next) => async (req) => {
  const call = req.contextValues.get(callKey);
  if (call === undefined) return next(req);
  call.reached = true;
  if (!req.stream) {
    call.received = 1;
    try {
      const res = await next(req);
      call.sent = 1;
      return res;
    } catch (e) {
      call.cause = e;
      throw e;
    }
  }
  try {
    const res = await next({ ...req, message: counted(req.message, call, false) });
    if (!res.stream) return res;
    return { ...res, message: counted(res.message, call, true) };
  } catch (e) {
    call.cause = e;
    throw e;
  }
};

// One listener for every response, so no closure per call; `this` is the response.
function onResponseClose(this: Tagged<NodeResponse>): void {
  const call = this[kCall]!;
  call.channel.observability.callEnded(call, outcome(call, this), this.statusCode);
}

function protocolOf(req: NodeRequest): Protocol {
  const type = req.headers["content-type"];
  if (type === undefined || !type.startsWith("application/grpc")) return "connect"; // includes GET and unknown types
  return type.startsWith("application/grpc-web") ? "grpc-web" : "grpc";
}

const kPeer = Symbol("routeguide.peer");

/** "address:port", once per connection: the calls of an HTTP/2 session share their session's. */
function peerOf(req: NodeRequest): string | undefined {
  const connection = "stream" in req ? req.stream.session : req.socket;
  return connection === undefined ? undefined : connectionPeer(connection);
}

type PeerSocket = { remoteAddress?: string; remotePort?: number };

/**
 * The peer of a connection, an HTTP/2 session or a socket, remembered on it.
 * A session's socket is read only the first time: it is a Proxy, slow to go through on every call.
 */
export function connectionPeer(connection: PeerSocket | { socket: PeerSocket }): string | undefined {
  const tagged = connection as { [kPeer]?: string };
  if (tagged[kPeer] !== undefined) return tagged[kPeer];
  const { remoteAddress, remotePort } = "socket" in connection ? connection.socket : connection;
  if (remoteAddress === undefined) return undefined;
  const peer = remoteAddress.includes(":") ? `[${remoteAddress}]:${remotePort}` : `${remoteAddress}:${remotePort}`;
  tagged[kPeer] = peer;
  return peer;
}

/** The status the client was sent: from the wire where it carries one, else from what the service did. */
function outcome(call: Call, res: NodeResponse): Code | 0 {
  if ("stream" in res) {
    const status = res.stream.sentTrailers?.["grpc-status"] ?? res.stream.sentHeaders?.["grpc-status"];
    if (status !== undefined) return Number(status);
    // Reset by the client before any status went out: the compat layer may still report the response as finished.
    if (res.stream.aborted) return Code.Canceled;
  }
  if (!res.writableFinished) return Code.Canceled; // the client went away first
  if (call.cause !== undefined) {
    // Connect answers anything that is not a ConnectError with "internal".
    return call.cause instanceof ConnectError ? call.cause.code : Code.Internal;
  }
  if (res.statusCode !== 200) return codeByHttpStatus.get(res.statusCode) ?? Code.Unknown;
  // gRPC-Web and Connect streams put the status of a refused call in the body; we don't parse it.
  return call.reached ? 0 : Code.Unknown;
}

/** The codes behind the HTTP statuses Connect (and http-handler's 505) answer with. */
const codeByHttpStatus = new Map<number, Code>([
  [400, Code.InvalidArgument],
  [401, Code.Unauthenticated],
  [403, Code.PermissionDenied],
  [404, Code.NotFound],
  [409, Code.AlreadyExists],
  [429, Code.ResourceExhausted],
  [499, Code.Canceled],
  [500, Code.Internal],
  [501, Code.Unimplemented],
  [503, Code.Unavailable],
  [504, Code.DeadlineExceeded],
  [505, Code.Unimplemented],
]);

/** Connect's names, indexed by code: what Connect clients and curl users see. */
const codeNames = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
  "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
  "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

function codeName(code: Code | 0): string {
  return codeNames[code] ?? String(code);
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/** Counts the messages an iterable yields; a failure of the response stream is the service's error. */
function counted<T>(source: AsyncIterable<T>, call: Call, response: boolean): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      const onResult = (result: IteratorResult<T>) => {
        if (result.done !== true) {
          if (response) call.sent++;
          else call.received++;
        }
        return result;
      };
      const onError = (e: unknown) => {
        if (response) call.cause = e;
        throw e;
      };
      return {
        next: (...args: [] | [unknown]) => it.next(...args).then(onResult, onError),
        ...(it.return && { return: (value?: unknown) => it.return!(value) }),
        ...(it.throw && { throw: (e?: unknown) => it.throw!(e) }),
      };
    },
  };
}
