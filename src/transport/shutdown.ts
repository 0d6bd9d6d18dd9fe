import { Code, ConnectError } from "@connectrpc/connect";
import type { Listener } from "./listener.js";

/**
 * After the grace period, how long ended streams get to write their
 * UNAVAILABLE status before their connections are destroyed.
 */
export const statusMarginMs = 1_000;

export interface Shutdown {
  /** Aborted with UNAVAILABLE when the grace period is over: Connect's `shutdownSignal`. */
  readonly signal: AbortSignal;
  /**
   * Stops the server: `beforeClose` runs (health turns NOT_SERVING), the
   * server goes on serving for `delayMs`, then the listener stops accepting
   * and sends GOAWAY, calls in flight may finish
   * for `graceMs`, then the ones left are aborted with UNAVAILABLE and every
   * connection still open is destroyed `statusMarginMs` later. Resolves once
   * all connections are closed; calling it again joins the first close.
   */
  close(listener: Listener, graceMs: number): Promise<void>;
}

/**
 * `delayMs` is for load balancers that learn of the stop from readiness
 * (HAProxy's checks) or at the same time as the server (Kubernetes removes
 * endpoints while it sends SIGTERM): until they stop sending, new
 * connections and calls are still served.
 */
export function createShutdown(beforeClose: () => void = () => {}, delayMs = 0): Shutdown {
  const calls = new AbortController();
  let closing: Promise<void> | undefined;
  return {
    signal: calls.signal,
    close(listener, graceMs) {
      closing ??= (async () => {
        beforeClose();
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        const closed = listener.close(graceMs + statusMarginMs);
        const timer = setTimeout(
          () => calls.abort(new ConnectError("the server is shutting down", Code.Unavailable)),
          graceMs,
        );
        try {
          await closed;
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}

/**
 * SIGTERM or SIGINT closes `server` gracefully and exits 0 once it is
 * closed; a second signal exits at once with status 1.
 */
export function exitOnSignals(server: { close(graceMs: number): Promise<void> }, graceMs: number, log: (line: string) => void): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log(`${signal}: shutting down; open streams get ${graceMs} ms`);
    server.close(graceMs).then(
      () => process.exit(0),
      (err: unknown) => {
        log(`shutdown failed: ${String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
