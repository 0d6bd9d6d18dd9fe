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
  // The decoder's unconsumed bytes: the rest of one chunk from #offset, or whole chunks once an envelope spans them.
  #pending: Buffer | Buffer[] | undefined = undefined;
  #offset = 0;
  #size = 0;

  constructor(private readonly readMaxBytes: number) {}

  /** The envelopes this chunk completes; throws the ConnectError the Connect path answers with. */
  push(chunk: Buffer): Envelope[] {
    this.#checkFlags(chunk);
    const envelopes: Envelope[] = [];
    const pending = this.#pending;
    let buf = chunk;
    this.#size += chunk.length;
    if (pending !== undefined) {
      // An envelope spans chunks: they are kept as they come and copied once, when it is whole.
      const parts = Array.isArray(pending) ? pending : [pending.subarray(this.#offset)];
      parts.push(chunk);
      this.#pending = parts;
      this.#offset = 0;
      if (this.#size < 5) return envelopes;
      if (parts[0]!.length < 5) parts.splice(0, parts.length, Buffer.concat(parts, this.#size));
      if (this.#size < 5 + this.#length(parts[0]!, 0)) return envelopes;
      buf = parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.#size);
    }
    let offset = 0;
    let size = this.#size;
    while (size >= 5) {
      const length = this.#length(buf, offset);
      if (size < 5 + length) break;
      envelopes.push({ flags: buf[offset]!, data: buf.subarray(offset + 5, offset + 5 + length) });
      offset += 5 + length;
      size -= 5 + length;
    }
    this.#size = size;
    this.#pending = size > 0 ? buf : undefined;
    this.#offset = offset;
    return envelopes;
  }

  /** The payload length in the header at `offset`, checked as each header arrives, before its payload does. */
  #length(buf: Buffer, offset: number): number {
    const length = buf.readUInt32BE(offset + 1);
    if (length > this.readMaxBytes) {
      // Connect's assertReadMaxBytes, word for word.
      throw new ConnectError(`message size ${length} is larger than configured readMaxBytes ${this.readMaxBytes}`, Code.ResourceExhausted);
    }
    return length;
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
