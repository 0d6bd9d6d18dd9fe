import { defaultConfig, type Config } from "../../src/config.js";
import { startServer, type RunningServer } from "../../src/server.js";

/** The real server on 127.0.0.1 and a free port; stop it with close(). */
export function startTestServer(overrides: Partial<Config> = {}): Promise<RunningServer> {
  return startServer({ ...defaultConfig(), host: "127.0.0.1", port: 0, ...overrides });
}

export type { RunningServer };
