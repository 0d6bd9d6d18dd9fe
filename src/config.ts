import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import { defaultLimits, type Limits } from "./transport/limits.js";
import { type ConnectionLifetime, defaultConnectionLifetime } from "./transport/connection-lifetime.js";

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
  /** Sizes, counts and timeouts per connection, stream and call (src/transport/limits.ts). */
  limits: Limits;
  /** On SIGTERM/SIGINT, open streams get this long to finish before they end with UNAVAILABLE. */
  shutdownGraceMs: number;
  /** On SIGTERM/SIGINT, readiness turns NOT_SERVING at once and the server goes on serving this long before it closes. */
  shutdownDelayMs: number;
  /** Max connection age and keepalive (src/transport/connection-lifetime.ts). */
  lifetime: ConnectionLifetime;
  /** Lowest level written to the log; "info" logs one line per RPC, "silent" nothing. */
  logLevel: LogLevel;
  /**
   * Calls are answered by the server's protocol engine (src/engine/), for
   * every method it can serve; false (--no-fast-path) sends every call
   * through connect-node's general path instead, to compare the two.
   */
  fastPath: boolean;
  /** Processes serving the port (node:cluster, src/transport/workers.ts); 1 means this process alone, no primary. */
  workers: number;
}

export const logLevels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof logLevels)[number];

export function defaultConfig(): Config {
  return {
    host: "::",
    port: 50051,
    dataFile: undefined,
    tls: undefined,
    corsOrigins: ["*"],
    limits: defaultLimits(),
    shutdownGraceMs: 5_000,
    shutdownDelayMs: 0,
    lifetime: defaultConnectionLifetime(),
    logLevel: "info",
    fastPath: true,
    workers: 1,
  };
}

export const usage = `Usage: npm start -- [options]

  --port N             port to listen on (default 50051, or $PORT)
  --host HOST          address to bind (default ::, all interfaces)
  --data FILE          JSON array of Person records (default: the tutorial's Alice and Bob)
  --tls-cert FILE      PEM certificate; with --tls-key, serve TLS (ALPN h2 and http/1.1)
  --tls-key FILE       PEM private key
  --cors-origin ORIGIN origin allowed to call from browsers; repeat for several (default *)
  --log-level LEVEL    trace, debug, info (one line per RPC), warn, error, fatal or silent
                       (default info, or $LOG_LEVEL)
  --workers N|auto     processes sharing the port (node:cluster); auto: one per core
                       (default 1: this process alone)

Limits (SIZE: bytes, or with KiB / MiB; DURATION: seconds, or with ms / s / m):
  --max-message-size SIZE     largest request message, also after decompression (default 4MiB)
  --max-header-size SIZE      largest request header block, HTTP/1.1 and HTTP/2 (default 16KiB)
  --max-concurrent-streams N  HTTP/2 streams open at once per connection (default 100)
  --max-session-memory SIZE   memory one HTTP/2 connection may buffer (default 10MiB)
  --headers-timeout DURATION  time to show the protocol (TLS handshake, HTTP/2 preface) and send
                              HTTP/1.1 request headers (default 10s)
  --request-timeout DURATION  time to send a whole HTTP/1.1 request (default 60s)
  --keep-alive-timeout DURATION  idle HTTP/1.1 connections are closed after this (default 5s)
  --idle-timeout DURATION     HTTP/2 connections without open streams are closed after this (default 5m)
  --max-deadline DURATION     longest deadline a call gets; longer or missing ones are cut to it
                              (default 0: none)
  --shutdown-grace DURATION   on SIGTERM/SIGINT, time open streams get before they end with
                              UNAVAILABLE (default 5s)
  --shutdown-delay DURATION   on SIGTERM/SIGINT, readiness turns NOT_SERVING at once and the server
                              goes on serving this long before it closes (default 0)

Connection lifetime (HTTP/2; the age also closes HTTP/1.1 connections):
  --max-connection-age DURATION        GOAWAY "max_age" after this, ±10% (default 0: never)
  --max-connection-age-grace DURATION  then open streams get this long (default 0: unlimited)
  --keepalive-time DURATION   PING a connection quiet for this long (default 120m; 0: never)
  --keepalive-timeout DURATION  close it if the PING is not answered within this (default 20s)
  --keepalive-min-time DURATION  client pings more often, with no data between, get GOAWAY
                              "too_many_pings" after 2 strikes (default 5m; 0: any rate)

  --no-fast-path       answer every call through connect-node's general path, none through the
                       server's engine (src/engine/; same answers, for comparing the two)
  -h, --help           show this help

Environment:
  PORT                 port to listen on, when --port is not given
  LOG_LEVEL            log level, when --log-level is not given
  OTEL_*               OpenTelemetry tracing, off unless OTEL_EXPORTER_OTLP_ENDPOINT,
                       OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_TRACES_EXPORTER asks for it;
                       OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none turn it off;
                       OTEL_SERVICE_NAME (default routeguide) (src/observability/tracing.ts)`;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** `--help` or `-h`: not a mistake, so the caller prints the message to stdout and exits 0. */
export class HelpRequested extends Error {
  override name = "HelpRequested";
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv = {}): Config {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      allowNegative: true,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        data: { type: "string" },
        "tls-cert": { type: "string" },
        "tls-key": { type: "string" },
        "cors-origin": { type: "string", multiple: true },
        "log-level": { type: "string" },
        "max-message-size": { type: "string" },
        "max-header-size": { type: "string" },
        "max-concurrent-streams": { type: "string" },
        "max-session-memory": { type: "string" },
        "headers-timeout": { type: "string" },
        "request-timeout": { type: "string" },
        "keep-alive-timeout": { type: "string" },
        "idle-timeout": { type: "string" },
        "max-deadline": { type: "string" },
        "shutdown-grace": { type: "string" },
        "shutdown-delay": { type: "string" },
        "max-connection-age": { type: "string" },
        "max-connection-age-grace": { type: "string" },
        "keepalive-time": { type: "string" },
        "keepalive-timeout": { type: "string" },
        "keepalive-min-time": { type: "string" },
        "fast-path": { type: "boolean" },
        workers: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  if (values.help) throw new HelpRequested(usage);
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
  parseLimits(values, config);
  if (values["fast-path"] !== undefined) config.fastPath = values["fast-path"];
  if (values.workers !== undefined) config.workers = parseWorkers(values.workers);
  const logLevel = values["log-level"] ?? env.LOG_LEVEL;
  if (logLevel !== undefined) config.logLevel = parseLogLevel(logLevel);
  return config;
}

function parseLogLevel(text: string): LogLevel {
  const level = logLevels.find((l) => l === text);
  if (level === undefined) {
    throw new ConfigError(`invalid log level ${JSON.stringify(text)}: expected one of ${logLevels.join(", ")}`);
  }
  return level;
}

function parseLimits(values: Record<string, string | boolean | string[] | undefined>, config: Config): void {
  const flag = (name: string) => values[name] as string | undefined;
  const limits = config.limits;
  const size = (name: string, apply: (bytes: number) => void) => {
    const text = flag(name);
    if (text !== undefined) apply(parseSize(name, text));
  };
  const duration = (name: string, apply: (ms: number) => void) => {
    const text = flag(name);
    if (text !== undefined) apply(parseDuration(name, text));
  };
  size("max-message-size", (n) => (limits.maxMessageBytes = n));
  size("max-header-size", (n) => (limits.maxHeaderBytes = n));
  size("max-session-memory", (n) => (limits.maxSessionMemoryBytes = n));
  const streams = flag("max-concurrent-streams");
  if (streams !== undefined) {
    if (!/^\d+$/.test(streams) || Number(streams) < 1) {
      throw new ConfigError(`invalid --max-concurrent-streams ${JSON.stringify(streams)}: expected a whole number from 1`);
    }
    limits.maxConcurrentStreams = Number(streams);
  }
  duration("headers-timeout", (ms) => (limits.headersTimeoutMs = ms));
  duration("request-timeout", (ms) => (limits.requestTimeoutMs = ms));
  duration("keep-alive-timeout", (ms) => (limits.keepAliveTimeoutMs = ms));
  duration("idle-timeout", (ms) => (limits.idleTimeoutMs = ms));
  duration("max-deadline", (ms) => (limits.maxDeadlineMs = ms));
  duration("shutdown-grace", (ms) => (config.shutdownGraceMs = ms));
  duration("shutdown-delay", (ms) => (config.shutdownDelayMs = ms));
  const lifetime = config.lifetime;
  duration("max-connection-age", (ms) => (lifetime.maxAgeMs = ms));
  duration("max-connection-age-grace", (ms) => (lifetime.maxAgeGraceMs = ms));
  duration("keepalive-time", (ms) => (lifetime.keepaliveTimeMs = ms));
  duration("keepalive-timeout", (ms) => (lifetime.keepaliveTimeoutMs = ms));
  duration("keepalive-min-time", (ms) => (lifetime.keepaliveMinTimeMs = ms));
  if (lifetime.keepaliveTimeoutMs === 0) throw new ConfigError("--keepalive-timeout must be more than 0");
  // Node refuses this combination; say so in the flags' terms.
  if (limits.requestTimeoutMs > 0 && limits.headersTimeoutMs > limits.requestTimeoutMs) {
    throw new ConfigError("--headers-timeout must not be longer than --request-timeout");
  }
}

const sizeUnits: Record<string, number> = { "": 1, B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 };

/** "4MiB", "16KiB", "65536": a positive whole number of bytes, at most 4 GiB - 1 (Connect's own cap). */
function parseSize(name: string, text: string): number {
  const match = /^(\d+)(B|KiB|MiB|GiB)?$/.exec(text);
  const bytes = match ? Number(match[1]) * sizeUnits[match[2] ?? ""]! : NaN;
  if (!(bytes >= 1 && bytes <= 0xffffffff)) {
    throw new ConfigError(`invalid --${name} ${JSON.stringify(text)}: expected bytes, e.g. 4MiB, 16KiB or 65536`);
  }
  return bytes;
}

const durationUnits: Record<string, number> = { "": 1_000, ms: 1, s: 1_000, m: 60_000 };

/** "10s", "500ms", "5m", "30" (seconds): whole milliseconds, 0 or more. */
function parseDuration(name: string, text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(text);
  const ms = match ? Math.round(Number(match[1]) * durationUnits[match[2] ?? ""]!) : NaN;
  if (!(ms >= 0 && ms <= 2 ** 31 - 1)) {
    throw new ConfigError(`invalid --${name} ${JSON.stringify(text)}: expected a duration, e.g. 10s, 500ms or 5m`);
  }
  return ms;
}

/** "auto" is one worker per core the process may use. */
function parseWorkers(text: string): number {
  if (text === "auto") return availableParallelism();
  if (!/^\d+$/.test(text) || Number(text) < 1) {
    throw new ConfigError(`invalid --workers ${JSON.stringify(text)}: expected a whole number from 1, or auto`);
  }
  return Number(text);
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new ConfigError(`invalid port ${JSON.stringify(text)}: expected a number from 0 to 65535`);
  }
  return port;
}
