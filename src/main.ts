import { ConfigError, parseConfig } from "./config.js";
import { DataFileError } from "./directory.js";
import { startServer } from "./server.js";

/** Entry point of `npm start`: flags in, a listening server out, clean exit on SIGINT/SIGTERM. */
async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2), process.env);
  const server = await startServer(config);
  console.log(`Server started on port ${server.port}`);
  console.log(
    `Serving RouteGuide to gRPC, gRPC-Web and Connect clients at ${server.url} ` +
      `(${config.tls ? "TLS: h2 and http/1.1 by ALPN" : "HTTP/1.1 and h2c"}); ` +
      `${server.directory.size} people; Node ${process.version}`,
  );
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1); // a second signal: stop waiting
    stopping = true;
    console.log(`${signal}: shutting down`);
    server.close().then(() => process.exit(0));
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
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
