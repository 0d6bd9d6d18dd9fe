import cluster from "node:cluster";
import { ConfigError, HelpRequested, parseConfig, type Config } from "./config.js";
import { DataFileError } from "./routeguide/directory.js";
import { createLogger } from "./observability/logging.js";
import { startTracing } from "./observability/tracing.js";
import { startServer } from "./server.js";
import { exitOnSignals } from "./transport/shutdown.js";
import { checkTlsFiles } from "./transport/tls-files.js";
import { peopleCount, reportStartFailure, runPrimary, serveAsWorker, workerSlot } from "./transport/workers.js";

/**
 * Entry point of `npm start`: flags in, a listening server out, clean exit on
 * SIGINT/SIGTERM. With --workers N, this process is the primary and the same
 * file runs again in each worker (src/transport/workers.ts).
 */
async function main(config: Config): Promise<void> {
  if (cluster.isPrimary) {
    // Checked once here, so that N workers do not each fail with an OpenSSL error.
    if (config.tls) await checkTlsFiles(config.tls);
    if (config.workers > 1) return runPrimary(config);
  }
  const slot = workerSlot();
  const processLogger = await createLogger(config.logLevel);
  const logger = slot === undefined ? processLogger : processLogger.child({ worker: slot });
  const tracing = await startTracing({ serviceName: "routeguide", warn: (line) => logger.warn(line) });
  const running = await startServer(config, { logger, ...(tracing && { interceptors: [tracing.interceptor] }) });
  // The spans still queued go out after the last call, before the process exits.
  const server = tracing ? { ...running, close: (ms: number) => running.close(ms).finally(() => tracing.shutdown()) } : running;
  if (slot !== undefined) return serveAsWorker(server, config.shutdownGraceMs, logger);
  // Before the line below: whoever waits for it may signal at once.
  exitOnSignals(server, config.shutdownGraceMs, (line) => logger.info(line));
  // The tutorial's line stays plain text and first: scripts and tests wait for it. The rest is the log.
  console.log(`Server started on port ${server.port}`);
  logger.info(
    `Serving RouteGuide to gRPC, gRPC-Web and Connect clients at ${server.url} ` +
      `(${config.tls ? "TLS: h2 and http/1.1 by ALPN" : "HTTP/1.1 and h2c"}); ` +
      `${peopleCount(server.directory.size)}; Node ${process.version}`,
  );
}

/** One line for the mistakes a user can fix (flags, files, addresses); undefined for anything else. */
function explain(err: unknown, config: Config | undefined): string | undefined {
  if (err instanceof ConfigError || err instanceof DataFileError) return err.message;
  const { code, address, port } = err as NodeJS.ErrnoException & { address?: string; port?: number };
  switch (code) {
    case "EADDRINUSE":
      return `error: port ${port} is already in use on ${address}; pick another with --port or PORT`;
    case "EACCES":
      return `error: port ${port} on ${address} needs privileges this process lacks; pick one from 1024 with --port or PORT`;
    case "EADDRNOTAVAIL":
      return `error: --host ${address ?? config?.host} is not an address of this machine`;
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `error: --host ${config?.host} does not resolve to an address`;
  }
  return undefined;
}

let config: Config | undefined;
try {
  config = parseConfig(process.argv.slice(2), process.env);
  await main(config);
} catch (err: unknown) {
  if (err instanceof HelpRequested) {
    console.log(err.message);
    process.exit(0);
  }
  const line = explain(err, config);
  if (cluster.isWorker) reportStartFailure(line ?? String((err as Error).stack ?? err));
  else {
    console.error(line ?? err);
    process.exit(1);
  }
}
