/** Whoever feeds a queue: it stops reading while the handler has enough messages waiting. */
export interface QueueSource {
  /** The handler took a message. */
  taken(): void;
  pauseReading(): void;
  resumeReading(): void;
}

/** Messages the handler has not taken yet, beyond which the request's reading pauses. */
const highWater = 16;

/**
 * The request messages of a streaming call, as the async iterable the
 * handler reads. Pushed as envelopes are parsed; a failure (a malformed
 * message, the deadline, a cancel) rejects the handler's next read, so a
 * handler waiting for a message is ended too (connect-node leaves it waiting).
 */
export class MessageQueue<T> implements AsyncIterableIterator<T> {
  // Messages waiting from #head on (an index, not shift(): a burst of 16 would move the rest each time).
  #items: T[] = [];
  #head = 0;
  #ended = false;
  #error: unknown = undefined;
  #failed = false;
  #paused = false;
  #waiting: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  #check: ((item: T) => void) | undefined = undefined;

  constructor(private readonly source: QueueSource) {}

  /**
   * Each message is checked as the handler takes it (Invoker's RequestCheck):
   * a message that fails rejects that read, as @connectrpc/validate's
   * wrapper rejects it, and the next read goes on.
   */
  checkEach(check: (item: T) => void): void {
    this.#check = check;
  }

  /** What the check threw for this message, if it failed it. */
  #refusal(item: T): { error: unknown } | undefined {
    if (this.#check === undefined) return undefined;
    try {
      this.#check(item);
      return undefined;
    } catch (error) {
      return { error };
    }
  }

  push(item: T): void {
    if (this.#ended || this.#failed) return;
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      this.source.taken();
      const refusal = this.#refusal(item);
      if (refusal !== undefined) waiting.reject(refusal.error);
      else waiting.resolve({ value: item, done: false });
      return;
    }
    this.#items.push(item);
    if (this.#items.length - this.#head >= highWater && !this.#paused) {
      this.#paused = true;
      this.source.pauseReading();
    }
  }

  end(): void {
    if (this.#ended || this.#failed) return;
    this.#ended = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.resolve({ value: undefined, done: true });
  }

  /** Messages already queued are still read first, as a body's complete envelopes are. */
  fail(error: unknown): void {
    if (this.#ended || this.#failed) return;
    this.#failed = true;
    this.#error = error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.reject(error);
  }

  next(): Promise<IteratorResult<T>> {
    const items = this.#items;
    if (this.#head < items.length) {
      const value = items[this.#head]!;
      items[this.#head++] = undefined as T;
      if (this.#head === items.length) {
        items.length = 0;
        this.#head = 0;
      }
      this.source.taken();
      if (this.#paused && items.length - this.#head < highWater / 2) {
        this.#paused = false;
        this.source.resumeReading();
      }
      const refusal = this.#refusal(value);
      if (refusal !== undefined) return Promise.reject(refusal.error);
      return Promise.resolve({ value, done: false });
    }
    if (this.#failed) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.#waiting = { resolve, reject }));
  }

  /** The handler stopped reading (break, return): the rest of the request is not needed. */
  return(): Promise<IteratorResult<T>> {
    this.#items = [];
    this.#head = 0;
    this.#ended = true;
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
