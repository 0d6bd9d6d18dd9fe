import { readFile } from "node:fs/promises";
import type { ConnectRouter, Interceptor } from "@connectrpc/connect";
import type { AddressInfo } from "node:net";
import type { Config } from "./config.js";
import { type Directory, loadDirectory } from "./routeguide/directory.js";
import { compressionBrotli, compressionGzip } from "@connectrpc/connect-node";
import { createConnectEngine } from "./engine/connect.js";
import { Engine } from "./engine/engine.js";
import { createGrpcEngine } from "./engine/grpc.js";
import { createGrpcWebEngine } from "./engine/grpc-web.js";
import { createRouteTable } from "./engine/route-table.js";
import { createHttpHandler } from "./http/handler.js";
import { http1Options, http2Options } from "./transport/limits.js";
import { type Logger, silentLogger } from "./observability/logging.js";
import { Observability, recordingInterceptor } from "./observability/calls.js";
import { createPlaintextListener, createTlsListener, type Listener, type ListenerOptions } from "./transport/listener.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { RouteGuide } from "../gen/route_guide_pb.js";
import { HealthStatus, readinessEndpoint } from "./grpc-services/health.js";
import { routes } from "./routes.js";
import { createShutdown } from "./transport/shutdown.js";
import { createStaticHandler, webBundleDir } from "./http/static.js";
import { validateRequest, validationInterceptor } from "./http/validation.js";

export interface RunningServer {
  readonly port: number;
  /** Base URL for clients on this machine, e.g. http://127.0.0.1:50051. */
  readonly url: string;
  readonly directory: Directory;
  /** What Health/Check, Watch and GET /healthz report; shutdown turns it NOT_SERVING. */
  readonly health: HealthStatus;
  /**
   * Graceful stop (src/transport/shutdown.ts): stops accepting, GOAWAY, in-flight calls get
   * `graceMs` (default: the config's shutdownGraceMs), then end with UNAVAILABLE.
   */
  close(graceMs?: number): Promise<void>;
}

export interface StartOptions {
  /** Where the line per RPC goes (src/main.ts: stdout); without one nothing is logged, metrics still count. */
  logger?: Logger;
  /** More services, registered on the same router after RouteGuide, health and reflection. */
  services?: (router: ConnectRouter) => void;
  /** Router interceptors, run in this order around every call, inside the server's own. */
  interceptors?: Interceptor[];
}

/** Loads the directory, then binds the port; fails before listening if either is wrong. */
export async function startServer(config: Config, options: StartOptions = {}): Promise<RunningServer> {
  const directory = await loadDirectory(config.dataFile);
  // The directory has loaded: the server and RouteGuide are ready.
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  health.set(RouteGuide.typeName, ServingStatus.SERVING);
  const builtIn = routes(directory, health);
  const serviceRoutes = (router: ConnectRouter) => {
    builtIn(router);
    options.services?.(router);
  };
  const shutdown = createShutdown(() => health.setAll(ServingStatus.NOT_SERVING), config.shutdownDelayMs);
  // protovalidate's rules on every request, inside the caller's interceptors (a tracing span sees its refusals):
  // an interceptor on connect-node's path, the same check as the engine's innermost step.
  const interceptors = options.interceptors ?? [];
  const logger = options.logger ?? silentLogger();
  const routerOptions = {
    readMaxBytes: config.limits.maxMessageBytes,
    shutdownSignal: shutdown.signal,
    // connectNodeAdapter's default, which the engine applies too.
    acceptCompression: [compressionGzip, compressionBrotli],
  };
  // Outermost on connect-node's path: it records each call as the engine does itself.
  const table = createRouteTable(serviceRoutes, {
    ...routerOptions,
    interceptors: [recordingInterceptor, ...interceptors, validationInterceptor],
  });
  const observability = new Observability(table, logger);
  const engine = config.fastPath
    ? new Engine({
        table,
        routerOptions: { ...routerOptions, interceptors },
        checkRequest: validateRequest,
        observability,
        maxDeadlineMs: config.limits.maxDeadlineMs,
      })
    : undefined;
  // Outermost, so every call is timed from its arrival to the end of its response.
  const handler = observability.observe(createHttpHandler({
    table,
    corsOrigins: config.corsOrigins,
    contextValues: observability.contextValues,
    acceptEncodings: routerOptions.acceptCompression.map((c) => c.name),
    // Connect and gRPC-Web unary calls of every method, answered as connect-node would, with the same settings.
    ...(engine && { engine: [createConnectEngine(engine), createGrpcWebEngine(engine)] }),
    endpoints: { "/metrics": observability.metrics.endpoint, "/healthz": readinessEndpoint(health) },
    maxDeadlineMs: config.limits.maxDeadlineMs,
    shutdownSignal: shutdown.signal,
    // The page at / (built by npm run build:web) and its files.
    fallback: createStaticHandler(webBundleDir),
  }));
  const limits: ListenerOptions = {
    http1: http1Options(config.limits),
    http2: http2Options(config.limits),
    handshakeTimeoutMs: config.limits.headersTimeoutMs,
    idleTimeoutMs: config.limits.idleTimeoutMs,
    lifetime: config.lifetime,
    // gRPC calls of every method, answered on the HTTP/2 stream itself as connect-node would.
    ...(engine && { onStream: createGrpcEngine(engine) }),
  };
  const listener: Listener = config.tls
    ? createTlsListener(
        handler,
        { cert: await readFile(config.tls.certFile), key: await readFile(config.tls.keyFile) },
        limits,
      )
    : createPlaintextListener(handler, limits);
  await listen(listener, config.port, config.host);
  const { port } = listener.server.address() as AddressInfo;
  const scheme = config.tls ? "https" : "http";
  const host = config.host === "::" || config.host === "0.0.0.0" ? "localhost" : config.host;
  return {
    port,
    url: `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`,
    directory,
    health,
    close: (graceMs = config.shutdownGraceMs) => shutdown.close(listener, graceMs),
  };
}

function listen(listener: Listener, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    listener.server.once("error", reject);
    listener.server.listen(port, host, () => {
      listener.server.off("error", reject);
      resolve();
    });
  });
}
