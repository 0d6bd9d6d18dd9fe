import { ConnectError } from "@connectrpc/connect";

/**
 * Iterates `source` until it ends or `signal` aborts, whichever comes first.
 * Connect does not end a streaming handler that is waiting for the next
 * request message when the deadline passes or the server shuts down, so the
 * wait itself has to give way to the signal.
 */
export async function* abortable<T>(source: AsyncIterable<T>, signal: AbortSignal): AsyncGenerator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let onAbort: (() => void) | undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(ConnectError.from(signal.reason));
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
  // The race may lose to a later abort; keep that rejection from going unhandled.
  aborted.catch(() => {});
  try {
    for (;;) {
      const result = await Promise.race([iterator.next(), aborted]);
      if (result.done) return;
      yield result.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort!);
    // Best effort: the request stream may already be torn down.
    void iterator.return?.()?.catch?.(() => {});
  }
}
