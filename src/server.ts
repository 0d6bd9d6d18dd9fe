import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { Config } from "./config.js";
import { type Directory, loadDirectory } from "./directory.js";
import { createHttpHandler } from "./http-handler.js";
import { createPlaintextListener, createTlsListener, type Listener } from "./listener.js";
import { HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { RouteGuide } from "../gen/route_guide_pb.js";
import { HealthStatus, readinessEndpoint } from "./health.js";
import { routes } from "./routes.js";

export interface RunningServer {
  readonly port: number;
  /** Base URL for clients on this machine, e.g. http://127.0.0.1:50051. */
  readonly url: string;
  readonly directory: Directory;
  /** What Health/Check, Watch and GET /healthz report; shutdown turns it NOT_SERVING. */
  readonly health: HealthStatus;
  /** Stops accepting and closes every connection; in-flight calls get up to `graceMs`. */
  close(graceMs?: number): Promise<void>;
}

/** Loads the directory, then binds the port; fails before listening if either is wrong. */
export async function startServer(config: Config): Promise<RunningServer> {
  const directory = await loadDirectory(config.dataFile);
  // The directory has loaded: the server and RouteGuide are ready.
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  health.set(RouteGuide.typeName, ServingStatus.SERVING);
  const handler = createHttpHandler({
    routes: routes(directory, health),
    corsOrigins: config.corsOrigins,
    endpoints: { "/healthz": readinessEndpoint(health) },
  });
  const listener: Listener = config.tls
    ? createTlsListener(handler, {
        cert: await readFile(config.tls.certFile),
        key: await readFile(config.tls.keyFile),
      })
    : createPlaintextListener(handler);
  await listen(listener, config.port, config.host);
  const { port } = listener.server.address() as AddressInfo;
  const scheme = config.tls ? "https" : "http";
  const host = config.host === "::" || config.host === "0.0.0.0" ? "localhost" : config.host;
  return {
    port,
    url: `${scheme}://${host.includes(":") ? `[${host}]` : host}:${port}`,
    directory,
    health,
    close: (graceMs = 5_000) => listener.close(graceMs),
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
