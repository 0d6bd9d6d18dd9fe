import { parseArgs } from "node:util";

/** Everything the server can be told at start, from flags and environment. */
export interface Config {
  host: string;
  port: number;
  /** JSON file of Person records; undefined means the tutorial's Alice and Bob. */
  dataFile: string | undefined;
  /** Paths of a PEM certificate and key; with them the port speaks TLS (h2 and http/1.1 by ALPN). */
  tls: { certFile: string; keyFile: string } | undefined;
  /** Origins allowed to call from a browser; ["*"] allows any. */
  corsOrigins: string[];
}

export function defaultConfig(): Config {
  return {
    host: "::",
    port: 50051,
    dataFile: undefined,
    tls: undefined,
    corsOrigins: ["*"],
  };
}

export const usage = `Usage: npm start -- [options]

  --port N             port to listen on (default 50051, or $PORT)
  --host HOST          address to bind (default ::, all interfaces)
  --data FILE          JSON array of Person records (default: the tutorial's Alice and Bob)
  --tls-cert FILE      PEM certificate; with --tls-key, serve TLS (ALPN h2 and http/1.1)
  --tls-key FILE       PEM private key
  --cors-origin ORIGIN origin allowed to call from browsers; repeat for several (default *)
  --help               show this help`;

export class ConfigError extends Error {
  override name = "ConfigError";
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = {}): Config {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        data: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "cors-origin": { type: "string", multiple: true },
        help: { type: "boolean" },
      },
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (values.help) throw new ConfigError(usage);
  const config = defaultConfig();
  const port = values.port ?? env.PORT;
  if (port !== undefined) config.port = parsePort(port);
  if (values.host !== undefined) config.host = values.host;
  config.dataFile = values.data;
  const cert = values["tls-cert"];
  const key = values["tls-key"];
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError("--tls-cert and --tls-key go together");
  }
  if (cert !== undefined && key !== undefined) config.tls = { certFile: cert, keyFile: key };
  if (values["cors-origin"] !== undefined) config.corsOrigins = values["cors-origin"];
  return config;
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new ConfigError(`invalid port ${JSON.stringify(text)}: expected a number from 0 to 65535`);
  }
  return port;
}
