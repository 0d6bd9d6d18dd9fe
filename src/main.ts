import { ConfigError, parseConfig } from "./config.js";
import { DataFileError } from "./routeguide/directory.js";
import { createLogger } from "./observability/logging.js";
import { startServer } from "./server.js";
import { exitOnSignals } from "./transport/shutdown.js";

/** Entry point of `npm start`: flags in, a listening server out, clean exit on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2), process.env);
  const logger = await createLogger(config.logLevel);
  const server = await startServer(config, { logger });
  // Before the line below: whoever waits for it may signal at once.
  exitOnSignals(server, config.shutdownGraceMs, (line) => logger.info(line));
  // The tutorial's line stays plain text and first: scripts and tests wait for it. The rest is the log.
  console.log(`Server started on port ${server.port}`);
  logger.info(
    `Serving RouteGuide to gRPC, gRPC-Web and Connect clients at ${server.url} ` +
      `(${config.tls ? "TLS: h2 and http/1.1 by ALPN" : "HTTP/1.1 and h2c"}); ` +
      `${server.directory.size} people; Node ${process.version}`,
  );
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof DataFileError) {
    console.error(err.message);
  } else if ((err as NodeJS.ErrnoException).code === "EADDRINUSE") {
    const { address, port } = err as { address?: string; port?: number };
    console.error(`error: port ${port} is already in use on ${address}; pick another with --port or PORT`);
  } else {
    console.error(err);
  }
  process.exit(1);
});
