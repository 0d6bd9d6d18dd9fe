/**
 * gRPC's length-prefixed message framing: 1 flag byte, 4 bytes of big-endian length, the message.
 * The bench's own, not the engine's (src/engine/envelopes.ts): the load it generates and the bare
 * ceiling must not share code with the server they measure.
 */

/** Frames one message; flags 0x00 is an uncompressed message, 0x80 a gRPC-Web trailer frame. */
export function envelope(message: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = flags;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/**
 * Splits a byte stream into enveloped messages whatever the chunk boundaries.
 * Chunks are only copied when a message spans several of them, so the cost stays linear.
 */
export class EnvelopeReader {
  #chunks: Buffer[] = [];
  #size = 0;

  constructor(
    private readonly onMessage: (flags: number, message: Buffer) => void,
    private readonly maxMessageBytes = 4 * 1024 * 1024,
  ) {}

  /** Throws RangeError when a message announces more than maxMessageBytes. */
  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
    while (this.#size >= 5) {
      if (this.#chunks[0]!.length < 5) this.#chunks = [Buffer.concat(this.#chunks, this.#size)];
      const head = this.#chunks[0]!;
      const length = head.readUInt32BE(1);
      if (length > this.maxMessageBytes) {
        throw new RangeError(`message of ${length} bytes exceeds the limit of ${this.maxMessageBytes}`);
      }
      if (this.#size < 5 + length) return;
      const whole = this.#chunks.length === 1 ? head : Buffer.concat(this.#chunks, this.#size);
      const rest = whole.subarray(5 + length);
      this.#chunks = rest.length > 0 ? [rest] : [];
      this.#size = rest.length;
      this.onMessage(whole[0]!, whole.subarray(5, 5 + length));
    }
  }

  /** True when the bytes so far end inside a message: the stream was cut short. */
  get incomplete(): boolean {
    return this.#size > 0;
  }
}
