// One span per RPC, as OpenTelemetry's RPC semantic conventions name and
// attribute it; shared by the server's interceptor (tracing.ts) and the
// client's (src/client/tracing.ts). Only @opentelemetry/api: without an SDK
// its tracer makes non-recording spans, so the client pays next to nothing.
import { type Attributes, type Span, SpanStatusCode } from "@opentelemetry/api";
import type { DescMethod } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";

/**
 * Which attribute names to write. The RPC conventions became stable in
 * semconv 1.45 with new names (rpc.system.name, a fully-qualified rpc.method,
 * rpc.status_code); as with HTTP's migration, OTEL_SEMCONV_STABILITY_OPT_IN
 * chooses: unset, the names most backends read today; `rpc`, the stable
 * ones; `rpc/dup`, both.
 */
export interface Conventions {
  readonly legacy: boolean;
  readonly stable: boolean;
}

export function conventionsFromEnv(env: NodeJS.ProcessEnv): Conventions {
  const optIn = (env.OTEL_SEMCONV_STABILITY_OPT_IN ?? "").split(",").map((s) => s.trim());
  if (optIn.includes("rpc/dup")) return { legacy: true, stable: true };
  if (optIn.includes("rpc")) return { legacy: false, stable: true };
  return { legacy: true, stable: false };
}

/** gRPC and gRPC-Web carry gRPC status codes; everything else here is the Connect protocol. */
export function isGrpc(contentType: string | null): boolean {
  return contentType !== null && contentType.startsWith("application/grpc");
}

/** The span's name and the attributes known when the call starts. */
export function rpcSpanStart(method: DescMethod, grpc: boolean, conventions: Conventions): { name: string; attributes: Attributes } {
  const name = `${method.parent.typeName}/${method.name}`;
  const attributes: Attributes = {};
  if (conventions.legacy) {
    attributes["rpc.system"] = grpc ? "grpc" : "connect_rpc";
    attributes["rpc.service"] = method.parent.typeName;
    attributes["rpc.method"] = method.name;
  }
  if (conventions.stable) {
    attributes["rpc.system.name"] = grpc ? "grpc" : "connectrpc";
    attributes["rpc.method"] = name;
  }
  return { name, attributes };
}

/**
 * Ends the span with the call's outcome. The status is ERROR only for the
 * codes that mean the server failed (gRPC's rule for server spans); a
 * client's mistake such as NOT_FOUND or INVALID_ARGUMENT keeps its code in
 * the attributes but is no error of the server. A client span is ERROR for
 * every code but OK.
 */
export function endRpcSpan(span: Span, grpc: boolean, conventions: Conventions, cause: unknown, server: boolean): void {
  const err = cause === undefined ? undefined : ConnectError.from(cause);
  const code = err?.code ?? 0;
  if (conventions.legacy) {
    if (grpc) span.setAttribute("rpc.grpc.status_code", code);
    else if (err !== undefined) span.setAttribute("rpc.connect_rpc.error_code", codeNames[code]!);
  }
  if (conventions.stable && (grpc || err !== undefined)) {
    const status = grpc ? codeNames[code]!.toUpperCase() : codeNames[code]!;
    span.setAttribute("rpc.status_code", status);
    if (err !== undefined) span.setAttribute("error.type", status);
  }
  if (err !== undefined && (!server || serverErrors.has(err.code))) {
    span.recordException(err);
    span.setStatus({ code: SpanStatusCode.ERROR, message: err.rawMessage });
  }
  span.end();
}

const serverErrors = new Set<Code>([
  Code.Unknown,
  Code.DeadlineExceeded,
  Code.Unimplemented,
  Code.Internal,
  Code.Unavailable,
  Code.DataLoss,
]);

/** Connect's names, indexed by code; gRPC's are the same in upper case. */
const codeNames = [
  "ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found", "already_exists",
  "permission_denied", "resource_exhausted", "failed_precondition", "aborted", "out_of_range",
  "unimplemented", "internal", "unavailable", "data_loss", "unauthenticated",
];

/** Adds an `rpc.message` event per message of a stream, numbered from 1 in each direction. */
export function countedMessages<T>(source: AsyncIterable<T>, span: Span, type: "SENT" | "RECEIVED"): AsyncIterable<T> {
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      let id = 0;
      const onResult = (result: IteratorResult<T>) => {
        if (result.done !== true) span.addEvent("rpc.message", { "rpc.message.type": type, "rpc.message.id": ++id });
        return result;
      };
      return {
        next: (...args: [] | [unknown]) => it.next(...args).then(onResult),
        ...(it.return && { return: (value?: unknown) => it.return!(value) }),
        ...(it.throw && { throw: (e?: unknown) => it.throw!(e) }),
      };
    },
  };
}

/**
 * A response stream that ends the span when it ends: done (OK), failed (its
 * error) or left early by its consumer (CANCELED). `onEnd` runs once.
 */
export function endingWith<T>(source: AsyncIterable<T>, onEnd: (cause: unknown) => void): AsyncIterable<T> {
  let ended = false;
  const end = (cause: unknown) => {
    if (ended) return;
    ended = true;
    onEnd(cause);
  };
  return {
    [Symbol.asyncIterator]() {
      const it = source[Symbol.asyncIterator]();
      return {
        next: (...args: [] | [unknown]) =>
          it.next(...args).then(
            (result) => {
              if (result.done === true) end(undefined);
              return result;
            },
            (e: unknown) => {
              end(e);
              throw e;
            },
          ),
        return: (value?: unknown) => {
          end(new ConnectError("the stream was left before its end", Code.Canceled));
          return it.return ? it.return(value) : Promise.resolve({ done: true as const, value: undefined });
        },
        ...(it.throw && {
          throw: (e?: unknown) => {
            end(e);
            return it.throw!(e);
          },
        }),
      };
    },
  };
}
