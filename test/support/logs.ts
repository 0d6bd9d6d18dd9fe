import assert from "node:assert/strict";

export type LogLine = Record<string, unknown>;

/**
 * A log destination for createLogger that tests read back. A call's line is
 * written when its response closes, a moment after the client saw the end,
 * so readers wait for the lines they expect (bounded, never timed).
 */
export class LogLines {
  readonly entries: LogLine[] = [];

  write(line: string): void {
    this.entries.push(JSON.parse(line) as LogLine);
  }

  /** Waits (bounded) until `count` lines have been written, and returns them all. */
  async waitFor(count: number): Promise<LogLine[]> {
    for (let i = 0; i < 500 && this.entries.length < count; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(this.entries.length, count, `expected ${count} log lines, got ${JSON.stringify(this.entries)}`);
    return this.entries;
  }

  /** The `count` lines written since the first `from`. */
  async since(from: number, count: number): Promise<LogLine[]> {
    return (await this.waitFor(from + count)).slice(from);
  }

  /** Runs `calls` and returns the `expected` lines they produced. */
  async of(expected: number, calls: () => Promise<unknown>): Promise<LogLine[]> {
    const from = this.entries.length;
    await calls();
    return this.since(from, expected);
  }
}

/**
 * A line without what differs between any two runs of the same call: time,
 * duration, pid, host, the client's port and trace ids; an error line keeps its error's
 * type and message, not the stack of wherever a path noticed it.
 */
export function stableLine(entry: LogLine): LogLine {
  const { time: _t, pid: _p, hostname: _h, ms, peer, err, trace_id, span_id, ...rest } = entry;
  assert.equal(typeof ms, "number");
  const stable: LogLine = peer === undefined ? rest : { ...rest, peer: String(peer).replace(/:\d+$/, ":port") };
  // With tracing on, every call has ids of its own: only whether it has them is stable.
  if (trace_id !== undefined || span_id !== undefined) Object.assign(stable, { trace_id: typeof trace_id, span_id: typeof span_id });
  if (err === undefined) return stable;
  const { type, message } = err as { type: string; message: string };
  return { ...stable, err: { type, message } };
}
