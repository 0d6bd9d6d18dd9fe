import { defaultConfig, type Config, type LogLevel } from "../../src/config.js";
import { createLogger } from "../../src/observability/logging.js";
import { startServer, type RunningServer, type StartOptions } from "../../src/server.js";
import { LogLines } from "./logs.js";

/** The real server on 127.0.0.1 and a free port; stop it with close(). */
export function startTestServer(overrides: Partial<Config> = {}, options: StartOptions = {}): Promise<RunningServer> {
  return startServer({ ...defaultConfig(), host: "127.0.0.1", port: 0, ...overrides }, options);
}

export interface LoggedServer {
  server: RunningServer;
  /** What the server logged at `level`, one entry per line. */
  logs: LogLines;
}

/** The real server with its log read back. */
export async function startLoggedServer(
  overrides: Partial<Config> = {},
  { level = "info", ...options }: Omit<StartOptions, "logger"> & { level?: LogLevel } = {},
): Promise<LoggedServer> {
  const logs = new LogLines();
  const logger = await createLogger(level, logs);
  return { server: await startTestServer(overrides, { ...options, logger }), logs };
}

export type { RunningServer };
