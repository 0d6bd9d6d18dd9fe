import http2 from "node:http2";
import net from "node:net";
import { create, toBinary } from "@bufbuild/protobuf";
import { NameSchema } from "../../gen/route_guide_pb.js";

/** Raw wire helpers for tests that must send what no well-behaved client would. */

/** A length-prefixed message as gRPC, gRPC-Web and Connect streaming frame it. */
export function envelope(flags: number, data: Uint8Array, declaredLength = data.length): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt8(flags, 0);
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, data]);
}

/** A valid binary RouteGuide Name. */
export function nameBytes(name: string): Uint8Array {
  return toBinary(NameSchema, create(NameSchema, { name }));
}

export interface H2Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  /** The RST_STREAM code, when the stream ended with one (0 is NO_ERROR). */
  rstCode: number | undefined;
}

/**
 * One HTTP/2 request on its own connection. `body` pieces are written in
 * order; `end: false` leaves the request side open (the server decides).
 */
export async function h2Request(
  url: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | Uint8Array[] = [],
  options: { end?: boolean; timeoutMs?: number } = {},
): Promise<H2Reply> {
  const session = http2.connect(url);
  session.on("error", () => {}); // the stream reports what matters
  try {
    return await h2Exchange(session, headers, body, options);
  } finally {
    session.destroy();
  }
}

/** One request on an existing session. */
export function h2Exchange(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array | Uint8Array[] = [],
  { end = true, timeoutMs = 10_000 }: { end?: boolean; timeoutMs?: number } = {},
): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ":method": "POST", ...headers });
    const reply: H2Reply = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), rstCode: undefined };
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      stream.destroy();
      reject(new Error(`no complete reply within ${timeoutMs} ms`));
    }, timeoutMs);
    stream.on("response", (h) => {
      reply.headers = h;
      reply.status = Number(h[":status"]);
    });
    stream.on("trailers", (t) => (reply.trailers = t));
    stream.on("data", (c: Buffer) => chunks.push(c));
    stream.on("error", () => {}); // a reset shows up in rstCode
    stream.on("close", () => {
      clearTimeout(timer);
      reply.body = Buffer.concat(chunks);
      reply.rstCode = stream.rstCode;
      resolve(reply);
    });
    for (const piece of Array.isArray(body) ? body : [body]) stream.write(piece);
    if (end) stream.end();
  });
}

/** The gRPC status of a reply: from the trailers, or from the headers of a trailers-only reply. */
export function grpcStatus(reply: H2Reply): number | undefined {
  const value = reply.trailers["grpc-status"] ?? reply.headers["grpc-status"];
  return value === undefined ? undefined : Number(value);
}

/** gRPC-Web puts its trailers in a body frame flagged 0x80 (or in the headers when trailers-only). */
export function grpcWebStatus(reply: { headers: Record<string, unknown>; body: Buffer }): number | undefined {
  let offset = 0;
  while (offset + 5 <= reply.body.length) {
    const flags = reply.body[offset]!;
    const length = reply.body.readUInt32BE(offset + 1);
    const data = reply.body.subarray(offset + 5, offset + 5 + length);
    if (flags & 0x80) {
      const match = /^grpc-status:\s*(\d+)/im.exec(data.toString("latin1"));
      return match ? Number(match[1]) : undefined;
    }
    offset += 5 + length;
  }
  const header = reply.headers["grpc-status"];
  return header === undefined ? undefined : Number(header);
}

/** The end-of-stream message of a Connect streaming reply (flag 0x02), parsed. */
export function connectEndStream(body: Buffer): { error?: { code: string; message?: string } } | undefined {
  let offset = 0;
  while (offset + 5 <= body.length) {
    const flags = body[offset]!;
    const length = body.readUInt32BE(offset + 1);
    if (flags & 0x02) return JSON.parse(body.subarray(offset + 5, offset + 5 + length).toString());
    offset += 5 + length;
  }
  return undefined;
}

export interface H1Reply {
  status: number;
  headers: Record<string, string>;
  /** Trailer fields of a chunked body. */
  trailers: Record<string, string>;
  body: Buffer;
}

/**
 * Writes raw bytes to a fresh TCP connection and reads one HTTP/1.1 reply
 * (content-length, chunked, or until close). Resolves with status 0 when the
 * server closed without a reply.
 */
export function h1Raw(port: number, request: Buffer | string, { timeoutMs = 10_000 } = {}): Promise<H1Reply> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete reply within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (reply: H1Reply) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reply);
    };
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const reply = parseH1(received, false);
      if (reply) finish(reply);
    });
    socket.on("error", () => {}); // a reset is a close
    socket.on("close", () => finish(parseH1(received, true) ?? { status: 0, headers: {}, trailers: {}, body: received }));
    socket.write(request);
  });
}

/** Parses a complete HTTP/1.1 response, or returns undefined when more bytes are due. */
export function parseH1(data: Buffer, closed: boolean): H1Reply | undefined {
  const end = data.indexOf("\r\n\r\n");
  if (end < 0) return undefined;
  const [statusLine, ...lines] = data.subarray(0, end).toString("latin1").split("\r\n");
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? "")?.[1] ?? 0);
  const headers = fields(lines);
  const rest = data.subarray(end + 4);
  if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    if (rest.length < length) return undefined;
    return { status, headers, trailers: {}, body: rest.subarray(0, length) };
  }
  if (headers["transfer-encoding"] === "chunked") {
    const chunks: Buffer[] = [];
    let offset = 0;
    for (;;) {
      const lineEnd = rest.indexOf("\r\n", offset);
      if (lineEnd < 0) return undefined;
      const size = parseInt(rest.subarray(offset, lineEnd).toString("latin1"), 16);
      if (size === 0) {
        const trailerEnd = rest.indexOf("\r\n\r\n", lineEnd);
        if (trailerEnd < 0) return undefined;
        const trailers = fields(rest.subarray(lineEnd + 2, trailerEnd).toString("latin1").split("\r\n"));
        return { status, headers, trailers, body: Buffer.concat(chunks) };
      }
      if (rest.length < lineEnd + 2 + size + 2) return undefined;
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      offset = lineEnd + 2 + size + 2;
    }
  }
  return closed ? { status, headers, trailers: {}, body: rest } : undefined;
}

function fields(lines: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon > 0) result[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return result;
}

/** HTTP/2 frame types used by the raw tests (RFC 9113 §6). */
export const frameType = { data: 0, headers: 1, rstStream: 3, settings: 4, ping: 6, goaway: 7, windowUpdate: 8, continuation: 9 } as const;
export const frameFlag = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;

/** One HTTP/2 frame. */
export function h2Frame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head.writeUInt8(type, 3);
  head.writeUInt8(flags, 4);
  head.writeUInt32BE(streamId, 5);
  return Buffer.concat([head, payload]);
}

/** A header block in the simplest HPACK form: literals without indexing or Huffman coding (RFC 7541 §6.2.2). */
export function hpack(headers: Array<[string, string]>): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00]), hpackString(name), hpackString(value));
  }
  return Buffer.concat(parts);
}

function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  const length: number[] = [];
  let n = bytes.length;
  if (n < 127) length.push(n);
  else {
    length.push(127);
    n -= 127;
    while (n >= 128) {
      length.push((n % 128) + 128);
      n = Math.floor(n / 128);
    }
    length.push(n);
  }
  return Buffer.concat([Buffer.from(length), bytes]);
}

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

/**
 * An HTTP/2 client that writes frames as given, for what node:http2 refuses
 * to send (resets in bulk, broken frames, half a header block). It sends the
 * preface and an empty SETTINGS, and acknowledges the server's SETTINGS.
 */
export class RawH2 {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  private readonly socket: net.Socket;
  private buffer = Buffer.alloc(0);
  private waiters: Array<() => void> = [];

  private readonly ackSettings: boolean;

  /**
   * `settings`: SETTINGS parameters to announce (RFC 9113 §6.5.2), e.g.
   * [[0x4, 2 ** 31 - 1]] for a huge stream window. `ackSettings: false`
   * leaves the server's SETTINGS unacknowledged.
   */
  constructor(port: number, { settings = [], ackSettings = true }: { settings?: Array<[number, number]>; ackSettings?: boolean } = {}) {
    this.ackSettings = ackSettings;
    this.socket = net.connect(port, "127.0.0.1");
    this.socket.on("error", () => {}); // a reset is a close
    this.closed = new Promise((resolve) => this.socket.once("close", () => resolve()));
    this.closed.then(() => this.wake());
    const payload = Buffer.alloc(6 * settings.length);
    settings.forEach(([id, value], i) => {
      payload.writeUInt16BE(id, 6 * i);
      payload.writeUInt32BE(value, 6 * i + 2);
    });
    this.socket.write(Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), h2Frame(frameType.settings, 0, 0, payload)]));
    this.socket.on("data", (chunk: Buffer) => this.receive(chunk));
  }

  /** Resolves true once the connection closes, or false after `boundMs`. */
  closesWithin(boundMs = 5_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), boundMs)));
    return Promise.race([this.closed.then(() => true), bound]).finally(() => clearTimeout(timer));
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  send(...frames: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(frames));
  }

  /** Resolves with the first frame (already received or to come) that matches, or undefined once the connection closed. */
  async next(match: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found || this.socket.destroyed) return found;
      if (Date.now() > deadline) throw new Error(`no matching frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Stops reading from the socket, so that the server's writes pile up; resume() reads again. */
  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    while (this.buffer.length >= 9) {
      const length = this.buffer.readUIntBE(0, 3);
      if (this.buffer.length < 9 + length) break;
      const frame: Frame = {
        type: this.buffer[3]!,
        flags: this.buffer[4]!,
        streamId: this.buffer.readUInt32BE(5) & 0x7fffffff,
        payload: this.buffer.subarray(9, 9 + length),
      };
      this.buffer = this.buffer.subarray(9 + length);
      this.frames.push(frame);
      if (this.ackSettings && frame.type === frameType.settings && !(frame.flags & frameFlag.ack)) {
        this.send(h2Frame(frameType.settings, frameFlag.ack, 0));
      }
    }
    this.wake();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}

/** The request headers of a gRPC call to `path`, for raw frames. */
export function grpcHeaders(path: string, extra: Array<[string, string]> = []): Array<[string, string]> {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "127.0.0.1"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ...extra,
  ];
}
