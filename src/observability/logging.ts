import cluster from "node:cluster";
import { pino, type DestinationStream, type Logger } from "pino";
import type { LogLevel } from "../config.js";

export type { DestinationStream, Logger };

/**
 * The process's logger: JSON lines on stdout for log collectors, or one
 * coloured line per entry when a person watches a terminal. Tests pass a
 * destination of their own to read the lines back.
 */
export async function createLogger(level: LogLevel, destination?: DestinationStream): Promise<Logger> {
  if (destination !== undefined) return pino({ level }, destination);
  if (process.stdout.isTTY) {
    // Loaded only for terminals: log collectors never need it.
    const { default: pretty } = await import("pino-pretty");
    return pino(
      { level },
      pretty({ colorize: true, singleLine: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" }),
    );
  }
  return pino({ level }, new BatchedStdout());
}

/**
 * stdout for log lines, written in batches of 64 KiB or 100 ms. A write(2)
 * per line would cost more than the call it describes. Each batch is written
 * synchronously, as pino's default destination writes each line: a slow
 * reader of stdout slows the server down instead of letting lines pile up in
 * memory, and the last batch is out before the process exits (an asynchronous
 * write still in flight at exit is lost, which pino's own flushSync() cannot
 * help). Each line is copied into the batch's buffer as it comes, so the
 * string dies young instead of waiting for the batch on the heap.
 */
class BatchedStdout {
  // Workers of --workers N share stdout: a pipe takes a write of up to PIPE_BUF (4 KiB) whole, so their lines never interleave.
  static readonly batchBytes = cluster.isWorker ? 4096 : 64 * 1024;
  static readonly batchMs = 100;
  // sonic-boom for its handling of partial writes and EAGAIN (a non-blocking pipe); its types only show strings.
  readonly #out = pino.destination({ dest: 1, sync: true, contentMode: "buffer" }) as unknown as {
    write(data: Buffer): boolean;
  };
  #batch = Buffer.allocUnsafe(BatchedStdout.batchBytes);
  #used = 0;
  #timer: NodeJS.Timeout | undefined = undefined;

  constructor() {
    // The last batch, also on process.exit() after a signal.
    process.once("exit", () => this.#flush());
  }

  write(line: string): boolean {
    // A UTF-16 code unit takes at most 3 bytes of UTF-8.
    const most = line.length * 3;
    if (this.#used + most > BatchedStdout.batchBytes) {
      this.#flush();
      if (most > BatchedStdout.batchBytes) {
        this.#out.write(Buffer.from(line));
        return true;
      }
    }
    this.#used += this.#batch.write(line, this.#used);
    this.#timer ??= setTimeout(this.#flush, BatchedStdout.batchMs).unref();
    return true;
  }

  readonly #flush = (): void => {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#used === 0) return;
    this.#out.write(this.#batch.subarray(0, this.#used)); // written before it returns: the buffer is free again
    this.#used = 0;
  };
}

/** For servers started without a logger (tests, benchmarks): metrics still count, nothing is written. */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/**
 * Writes info lines in pino's own format without pino's generic serialiser,
 * which costs ~2.5 µs a line on a busy server, most of what logging a call
 * costs. For loggers made by createLogger (pino's default formatters);
 * `fields` is a JSON fragment whose values are already escaped.
 */
export function infoLineWriter(logger: Logger, msg: string): (fields: string) => void {
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as DestinationStream;
  const bindings = internals[pino.symbols.chindingsSym] as string;
  const end = `,"msg":${JSON.stringify(msg)}}\n`;
  return (fields) => stream.write(`{"level":30,"time":${Date.now()}${bindings},${fields}${end}`);
}
