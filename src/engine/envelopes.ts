import { Code, ConnectError } from "@connectrpc/connect";

/** One length-prefixed message of a gRPC body: its flags byte and its bytes. */
export interface Envelope {
  flags: number;
  data: Buffer;
}

/** The only flag a request envelope may carry. */
export const compressedFlag = 0x01;

/** Connect's answer to a compressed envelope on a call without an encoding (the engine only takes those). */
export function assertUncompressed(envelope: Envelope): void {
  if ((envelope.flags & compressedFlag) !== 0) {
    throw new ConnectError("received compressed envelope, but do not know how to decompress", Code.Internal);
  }
}

/** One envelope: the flags byte, the length, the bytes. */
export function envelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + data.byteLength);
  out[0] = flags;
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/**
 * Splits a gRPC request body into envelopes with the errors, and in the
 * order, of the Connect path: request-guard.ts's flag check runs over each
 * whole chunk first, then Connect's envelope decoder (size limit checked at
 * each header, before its payload arrives) yields the chunk's complete
 * envelopes. Chunks are only copied when an envelope spans several.
 */
export class EnvelopeSplitter {
  // The flag check's position: header bytes still to see (0: in a payload), its flags, payload bytes to pass.
  #guardHeaderLeft = 5;
  #guardFlags = 0;
  #guardLength = 0;
  #guardSkip = 0;
  // The decoder's unconsumed bytes: one chunk, or several once an envelope spans them.
  #pending: Buffer | Buffer[] | undefined = undefined;
  #size = 0;

  constructor(private readonly readMaxBytes: number) {}

  /** The envelopes this chunk completes; throws the ConnectError the Connect path answers with. */
  push(chunk: Buffer): Envelope[] {
    this.#checkFlags(chunk);
    const pending = this.#pending;
    if (pending === undefined) this.#pending = chunk;
    else if (Array.isArray(pending)) pending.push(chunk);
    else this.#pending = [pending, chunk];
    this.#size += chunk.length;
    const envelopes: Envelope[] = [];
    while (this.#size >= 5) {
      let head = this.#pending;
      if (Array.isArray(head) && head[0]!.length < 5) head = this.#pending = Buffer.concat(head, this.#size);
      const first = Array.isArray(head) ? head[0]! : head!;
      const length = first.readUInt32BE(1);
      if (length > this.readMaxBytes) {
        // Connect's assertReadMaxBytes, word for word.
        throw new ConnectError(
          `message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`,
          Code.ResourceExhausted,
        );
      }
      if (this.#size < 5 + length) break;
      const whole = Array.isArray(head) ? Buffer.concat(head, this.#size) : first;
      envelopes.push({ flags: whole[0]!, data: whole.subarray(5, 5 + length) });
      this.#size -= 5 + length;
      this.#pending = this.#size > 0 ? whole.subarray(5 + length) : undefined;
    }
    return envelopes;
  }

  /** The body ended inside an envelope: Connect's "incomplete envelope". */
  get incomplete(): boolean {
    return this.#size > 0;
  }

  /** request-guard.ts's checkEnvelopeFlags, for gRPC: any flag but "compressed" is INTERNAL. */
  #checkFlags(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length) {
      if (this.#guardSkip > 0) {
        const skipped = Math.min(this.#guardSkip, chunk.length - offset);
        this.#guardSkip -= skipped;
        offset += skipped;
        continue;
      }
      const byte = chunk[offset++]!;
      if (this.#guardHeaderLeft === 5) this.#guardFlags = byte;
      else this.#guardLength = this.#guardLength * 256 + byte;
      if (--this.#guardHeaderLeft > 0) continue;
      if ((this.#guardFlags & ~compressedFlag) !== 0) {
        throw new ConnectError(
          `protocol error: invalid request envelope flags 0x${this.#guardFlags.toString(16).padStart(2, "0")}`,
          Code.Internal,
        );
      }
      this.#guardSkip = this.#guardLength;
      this.#guardHeaderLeft = 5;
      this.#guardLength = 0;
    }
  }
}
