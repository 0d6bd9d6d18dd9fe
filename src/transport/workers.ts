// --workers N: node:cluster processes share the port (the primary accepts each
// connection and hands it to the next worker). The primary serves nothing itself:
// it starts the workers, restarts one that dies, and turns a stop signal into
// every worker's graceful shutdown (src/transport/shutdown.ts).
import cluster, { type Worker } from "node:cluster";
import type { Config } from "../config.js";
import { createLogger, type Logger } from "../observability/logging.js";
import { serveClusterMetrics } from "../observability/cluster-metrics.js";
import type { RunningServer } from "../server.js";

/** Set by the primary in each worker's environment: its slot, 1 to N, kept by the worker that replaces it. */
const slotVariable = "ROUTEGUIDE_WORKER";

/** A restarted worker waits this long, doubled for each crash in a row, up to maxRestartDelayMs. */
const firstRestartDelayMs = 100;
const maxRestartDelayMs = 10_000;
/** A worker that served this long before dying starts the backoff afresh. */
const stableAfterMs = 10_000;

type ToPrimary =
  | { type: "routeguide:listening"; port: number; url: string; people: number }
  | { type: "routeguide:failed"; line: string };
type ToWorker = { type: "routeguide:shutdown" };

/** In a worker: its slot (1 to N), for the `worker` field of its log lines; undefined outside a cluster. */
export function workerSlot(): number | undefined {
  return cluster.isWorker ? Number(process.env[slotVariable]) : undefined;
}

/**
 * The primary of `--workers N`: forks the workers and, once all are listening,
 * prints the start line. A worker that fails to start stops them all (its one
 * line is printed, exit 1); one that dies later is restarted with a backoff.
 * SIGTERM or SIGINT drains every worker and exits 0 once all have exited 0; a
 * second signal kills them and exits 1 at once.
 */
export async function runPrimary(config: Config): Promise<void> {
  const logger = (await createLogger(config.logLevel)).child({ worker: 0 });
  serveClusterMetrics();
  const slots = Array.from({ length: config.workers }, (_, i) => i + 1);
  const crashes = new Map<number, number>(slots.map((slot) => [slot, 0]));
  const restarts = new Set<NodeJS.Timeout>();
  // Not cluster.workers: a worker leaves that list on its disconnect, which may come after its exit.
  const live = new Set<Worker>();
  let starting = true;
  let stopping = false;
  let failed = false;

  const fork = (slot: number): void => {
    const worker = cluster.fork({ [slotVariable]: String(slot) });
    live.add(worker);
    const forkedAt = Date.now();
    let listening = false;
    worker.on("message", (message: ToPrimary) => {
      if (message.type === "routeguide:listening") {
        listening = true;
        if (!starting) logger.info(`worker ${slot} (pid ${worker.process.pid}) is serving again`);
        onListening(message);
      } else if (message.type === "routeguide:failed" && starting && !failed) {
        failed = true;
        console.error(message.line);
      }
    });
    worker.on("exit", (code, signal) => {
      live.delete(worker);
      const how = signal ? `signal ${signal}` : `code ${code}`;
      if (stopping) {
        if (code !== 0) failed = true;
        if (live.size === 0) process.exit(failed ? 1 : 0);
        return;
      }
      if (starting && !listening) {
        // It printed why (its "failed" message); restarting would fail the same way.
        if (!failed) console.error(`worker ${slot} exited (${how}) before it was listening`);
        failed = true;
        killAll();
        process.exit(1);
      }
      const crashesInARow = Date.now() - forkedAt < stableAfterMs ? crashes.get(slot)! + 1 : 1;
      crashes.set(slot, crashesInARow);
      const delay = Math.min(maxRestartDelayMs, firstRestartDelayMs * 2 ** (crashesInARow - 1));
      logger.warn(`worker ${slot} (pid ${worker.process.pid}) exited with ${how}; restarting it in ${delay} ms`);
      const timer = setTimeout(() => {
        restarts.delete(timer);
        fork(slot);
      }, delay);
      restarts.add(timer);
    });
  };

  let ready = 0;
  const onListening = (message: Extract<ToPrimary, { type: "routeguide:listening" }>): void => {
    if (!starting || ++ready < slots.length) return;
    starting = false;
    // The tutorial's line stays plain text and first: scripts and tests wait for it. The rest is the log.
    console.log(`Server started on port ${message.port}`);
    logger.info(
      `Serving RouteGuide to gRPC, gRPC-Web and Connect clients at ${message.url} ` +
        `(${config.tls ? "TLS: h2 and http/1.1 by ALPN" : "HTTP/1.1 and h2c"}); ` +
        `${peopleCount(message.people)}; ${slots.length} workers; Node ${process.version}`,
    );
  };

  const killAll = (): void => {
    for (const worker of live) worker.process.kill("SIGKILL");
  };

  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      logger.info(`${signal} again: exiting now`);
      killAll();
      process.exit(1);
    }
    stopping = true;
    for (const timer of restarts) clearTimeout(timer);
    if (live.size === 0) process.exit(0);
    logger.info(`${signal}: shutting down ${live.size} workers; open streams get ${config.shutdownGraceMs} ms`);
    // A worker whose channel has closed is exiting already: cluster workers exit on disconnect.
    for (const worker of live) if (worker.isConnected()) worker.send({ type: "routeguide:shutdown" } satisfies ToWorker);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);

  for (const slot of slots) fork(slot);
}

/**
 * In a worker, once its server listens: tells the primary, and drains when the
 * primary says so. Stop signals sent to the worker itself are ignored: the
 * primary forwards them, and a signal to the whole process group (Ctrl-C, a
 * supervisor's kill) must count once, not once per process.
 */
export function serveAsWorker(server: RunningServer, graceMs: number, logger: Logger): void {
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => {});
  process.on("message", (message: ToWorker) => {
    if (message.type !== "routeguide:shutdown") return;
    server.close(graceMs).then(
      () => process.exit(0),
      (err: unknown) => {
        logger.error(`shutdown failed: ${String(err)}`);
        process.exit(1);
      },
    );
  });
  process.send!({ type: "routeguide:listening", port: server.port, url: server.url, people: server.directory.size } satisfies ToPrimary);
}

/** In a worker that could not start: the primary prints `line` once, for all of them. */
export function reportStartFailure(line: string): void {
  process.send!({ type: "routeguide:failed", line } satisfies ToPrimary, () => process.exit(1));
}

/** "1 person", "2 people". */
export function peopleCount(n: number): string {
  return `${n} ${n === 1 ? "person" : "people"}`;
}
