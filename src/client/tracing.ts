import { context, propagation, SpanKind, type TextMapSetter, trace } from "@opentelemetry/api";
import type { Interceptor } from "@connectrpc/connect";
import { conventionsFromEnv, countedMessages, endingWith, endRpcSpan, isGrpc, rpcSpanStart } from "../observability/rpc-spans.js";

// A proxy until an SDK registers (src/observability/tracing.ts): before that its spans record nothing.
const tracer = trace.getTracer("routeguide-client");
const conventions = conventionsFromEnv(process.env);

const headerSetter: TextMapSetter<Headers> = { set: (headers, key, value) => headers.set(key, value) };

/**
 * Client interceptor: a CLIENT span per call, child of the current context,
 * sent as `traceparent` / `tracestate`, so that the server's span joins the
 * caller's trace. Without a registered SDK the span is a no-op and nothing
 * is sent.
 */
export const traceContextInterceptor: Interceptor = (next) => async (req) => {
  const grpc = isGrpc(req.header.get("content-type"));
  const { name, attributes } = rpcSpanStart(req.method, grpc, conventions);
  const span = tracer.startSpan(name, { kind: SpanKind.CLIENT, attributes });
  propagation.inject(trace.setSpan(context.active(), span), req.header, headerSetter);
  const end = (cause: unknown) => endRpcSpan(span, grpc, conventions, cause, false);
  try {
    const res = await next(req.stream ? { ...req, message: countedMessages(req.message, span, "SENT") } : req);
    if (!res.stream) {
      end(undefined);
      return res;
    }
    return { ...res, message: endingWith(countedMessages(res.message, span, "RECEIVED"), end) };
  } catch (e) {
    end(e);
    throw e;
  }
};
