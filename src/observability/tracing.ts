// OpenTelemetry tracing, configured only by the standard OTEL_* variables:
// one SERVER span per RPC (a router interceptor), exported over OTLP/HTTP
// protobuf by a batch processor. Off unless the environment asks for it, and
// then nothing is installed: no interceptor, no SDK loaded. The CLI uses it
// too, for its client spans (src/client/tracing.ts).
import {
  type Attributes,
  context,
  createNoopMeter,
  type Meter,
  type MeterProvider,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  type TextMapGetter,
  trace,
  type Tracer,
} from "@opentelemetry/api";
import type { Interceptor } from "@connectrpc/connect";
import type { Sampler, SpanExporter } from "@opentelemetry/sdk-trace";
import type { callKey as CallKey } from "./calls.js";
import { type Conventions, conventionsFromEnv, countedMessages, endingWith, endRpcSpan, isGrpc, rpcSpanStart } from "./rpc-spans.js";

export interface Tracing {
  /** Router interceptor: a SERVER span per call, in the caller's trace when it sent `traceparent`. */
  readonly interceptor: Interceptor;
  /** Spans lost so far, to a full queue or a failed export. */
  readonly dropped: number;
  /** Exports the spans still queued (for at most `shutdownFlushMs`), then stops. Never rejects. */
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** service.name when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES names one. */
  serviceName: string;
  /** Where the one-time warnings go (the server's log, the CLI's stderr). */
  warn: (line: string) => void;
}

/** Longest the exit waits for the last spans: an unreachable collector must not hold a stopping server. */
export const shutdownFlushMs = 5_000;

/**
 * Whether the environment asks for traces: an OTLP endpoint, or an exporter
 * named in OTEL_TRACES_EXPORTER; OTEL_SDK_DISABLED=true or
 * OTEL_TRACES_EXPORTER=none turn it off.
 */
export function tracingWanted(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  const exporters = exporterNames(env);
  if (exporters.length > 0) return !exporters.includes("none");
  return Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
}

function exporterNames(env: NodeJS.ProcessEnv): string[] {
  return (env.OTEL_TRACES_EXPORTER ?? "").split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/**
 * Starts the SDK when the environment asks for it (process.env, which the
 * OTLP exporter also reads for its endpoint, headers, timeout, compression and
 * certificates), and registers it globally so that a service's own spans and
 * the client's interceptor find it. Undefined when tracing is off.
 */
export async function startTracing(options: TracingOptions): Promise<Tracing | undefined> {
  const env = process.env;
  if (!tracingWanted(env)) return undefined;
  // Loaded only now: a server without tracing never pays the SDK's start-up.
  // calls.ts (the server's call records) too: the CLI traces its calls without loading the server's metrics.
  const [sdk, { OTLPTraceExporter }, { AsyncLocalStorageContextManager }, resources, core, { callKey }] = await Promise.all([
    import("@opentelemetry/sdk-trace"),
    import("@opentelemetry/exporter-trace-otlp-proto"),
    import("@opentelemetry/context-async-hooks"),
    import("@opentelemetry/resources"),
    import("@opentelemetry/core"),
    import("./calls.js"),
  ]);

  const exporters: SpanExporter[] = [];
  for (const name of exporterNames(env).length > 0 ? exporterNames(env) : ["otlp"]) {
    if (name === "otlp") {
      const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? "http/protobuf";
      if (protocol !== "http/protobuf") options.warn(`tracing: OTLP protocol ${protocol} is not built in; exporting http/protobuf`);
      exporters.push(new OTLPTraceExporter());
    } else if (name === "console") {
      exporters.push(new sdk.ConsoleSpanExporter());
    } else {
      options.warn(`tracing: OTEL_TRACES_EXPORTER=${name} is not built in (otlp, console or none); ignored`);
    }
  }

  let dropped = 0;
  const selfObservation = droppedSpansMeter((count, reason) => {
    if (dropped === 0) {
      options.warn(
        `tracing: dropping spans (${reason}): the collector is unreachable or too slow; calls are not affected, ` +
          "the spans lost are counted and their number logged at shutdown",
      );
    }
    dropped += count;
  });
  // The bounded queue (OTEL_BSP_MAX_QUEUE_SIZE, 2048 by default) is what keeps a dead collector from costing memory.
  const batch = (exporter: SpanExporter) =>
    new sdk.BatchSpanProcessor({
      exporter,
      maxQueueSize: core.getNumberFromEnv("OTEL_BSP_MAX_QUEUE_SIZE"),
      maxExportBatchSize: core.getNumberFromEnv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
      scheduledDelayMillis: core.getNumberFromEnv("OTEL_BSP_SCHEDULE_DELAY"),
      exportTimeoutMillis: core.getNumberFromEnv("OTEL_BSP_EXPORT_TIMEOUT"),
      selfObsMeterProvider: selfObservation,
    });

  const resource = resources
    .defaultResource()
    .merge(resources.resourceFromAttributes({ "service.name": options.serviceName }))
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const provider = new sdk.TracerProvider({
    resource,
    sampler: samplerFromEnv(env, sdk, options.warn),
    spanProcessors: exporters.map(batch),
  });
  const propagator = new core.CompositePropagator({
    propagators: [new core.W3CTraceContextPropagator(), new core.W3CBaggagePropagator()],
  });
  // Global, so that handlers and clients in this process join the server's spans; a second start (tests) keeps the first.
  trace.setGlobalTracerProvider(provider);
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(propagator);

  const tracer = provider.getTracer("routeguide");
  return {
    interceptor: serverSpans(tracer, propagator, conventionsFromEnv(env), callKey),
    get dropped() {
      return dropped;
    },
    async shutdown() {
      const flushed = provider.shutdown().catch(() => {});
      let timer: NodeJS.Timeout | undefined;
      const bounded = new Promise<void>((resolve) => (timer = setTimeout(resolve, shutdownFlushMs)));
      await Promise.race([flushed, bounded]);
      clearTimeout(timer);
      if (dropped > 0) options.warn(`tracing: ${dropped} spans were dropped`);
      trace.disable();
      context.disable();
      propagation.disable();
    },
  };
}

/** OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG, which the SDK's TracerProvider no longer reads itself. */
function samplerFromEnv(
  env: NodeJS.ProcessEnv,
  sdk: typeof import("@opentelemetry/sdk-trace"),
  warn: (line: string) => void,
): Sampler {
  const ratio = () => {
    const arg = Number(env.OTEL_TRACES_SAMPLER_ARG ?? "1");
    return new sdk.TraceIdRatioBasedSampler(Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1);
  };
  const name = env.OTEL_TRACES_SAMPLER?.trim() ?? "parentbased_always_on";
  switch (name) {
    case "always_on":
      return new sdk.AlwaysOnSampler();
    case "always_off":
      return new sdk.AlwaysOffSampler();
    case "traceidratio":
      return ratio();
    case "parentbased_always_off":
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOffSampler() });
    case "parentbased_traceidratio":
      return new sdk.ParentBasedSampler({ root: ratio() });
    case "parentbased_always_on":
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
    default:
      warn(`tracing: OTEL_TRACES_SAMPLER=${name} is not built in; sampling parentbased_always_on`);
      return new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() });
  }
}

/**
 * A MeterProvider that only listens to the batch processor's own count of
 * finished spans (otel.sdk.processor.span.processed): those with an
 * error.type (queue_full, or the export's error) were lost.
 */
function droppedSpansMeter(onDropped: (count: number, reason: string) => void): MeterProvider {
  const noop = createNoopMeter();
  const meter: Meter = Object.create(noop, {
    createCounter: {
      value: (name: string, ...rest: Parameters<Meter["createCounter"]> extends [string, ...infer R] ? R : never) => {
        if (name !== "otel.sdk.processor.span.processed") return noop.createCounter(name, ...rest);
        return {
          add(count: number, attributes?: Attributes) {
            const reason = attributes?.["error.type"];
            if (reason !== undefined && count > 0) onDropped(count, String(reason));
          },
        };
      },
    },
  });
  return { getMeter: () => meter };
}

const headerGetter: TextMapGetter<Headers> = {
  get: (headers, key) => headers.get(key) ?? undefined,
  keys: (headers) => [...headers.keys()],
};

function serverSpans(
  tracer: Tracer,
  propagator: Parameters<typeof propagation.setGlobalPropagator>[0],
  conventions: Conventions,
  callKey: typeof CallKey,
): Interceptor {
  return (next) => async (req) => {
    const grpc = isGrpc(req.header.get("content-type"));
    const parent = propagator.extract(ROOT_CONTEXT, req.header, headerGetter);
    const { name, attributes } = rpcSpanStart(req.method, grpc, conventions);
    serverAddress(req.url, attributes);
    // The call's record (src/observability/calls.ts): the peer, and where the log line finds the ids.
    const call = req.contextValues.get(callKey);
    if (call?.peer !== undefined) {
      const colon = call.peer.lastIndexOf(":");
      attributes["network.peer.address"] = unbracketed(call.peer.slice(0, colon));
      attributes["network.peer.port"] = Number(call.peer.slice(colon + 1));
    }
    const span = tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
    if (call !== undefined && span.isRecording()) {
      const ids = span.spanContext();
      call.traceId = ids.traceId;
      call.spanId = ids.spanId;
    }
    const end = (cause: unknown) => endRpcSpan(span, grpc, conventions, cause, true);
    const active = trace.setSpan(parent, span);
    try {
      const res = await context.with(active, () =>
        req.stream ? next({ ...req, message: countedMessages(req.message, span, "RECEIVED") }) : next(req),
      );
      if (!res.stream) {
        end(undefined);
        return res;
      }
      // A stream the deadline or shutdown ends may just stop: Connect then answers with the signal's reason.
      // Read only here: the engine builds a call's signal when first asked, and aborting it costs a DOMException.
      const ended = (cause: unknown) => end(cause ?? (req.signal.aborted ? (req.signal.reason as unknown) : undefined));
      return { ...res, message: endingWith(countedMessages(res.message, span, "SENT"), ended) };
    } catch (e) {
      end(e);
      throw e;
    }
  };
}

/** server.address and server.port from the call's URL (scheme://authority/path), without a URL parser per call. */
function serverAddress(url: string, attributes: Attributes): void {
  const start = url.indexOf("//") + 2;
  const end = url.indexOf("/", start);
  const authority = url.slice(start, end === -1 ? undefined : end);
  const colon = authority.lastIndexOf(":");
  const hasPort = colon > authority.lastIndexOf("]");
  attributes["server.address"] = unbracketed(hasPort ? authority.slice(0, colon) : authority);
  attributes["server.port"] = hasPort ? Number(authority.slice(colon + 1)) : url.startsWith("https:") ? 443 : 80;
}

/** An IPv6 address without the brackets a URL or "address:port" puts around it. */
function unbracketed(host: string): string {
  return host.charCodeAt(0) === 0x5b /* [ */ ? host.slice(1, -1) : host;
}
