import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { TLSSocket } from "node:tls";
import { closeAgedHttp1, type ConnectionLifetime, watchHttp1Socket, watchSession } from "./connection-lifetime.js";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Every client speaks HTTP/2 first with exactly these bytes (RFC 9113 §3.4). */
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** How connections are bounded; src/transport/limits.ts derives these from the config. */
export interface ListenerOptions {
  /** For the HTTP/1.1 server: header size, header/request/keep-alive timeouts. */
  http1: http.ServerOptions;
  /** For the HTTP/2 server: SETTINGS, session memory, flood protections. */
  http2: http2.ServerOptions;
  /** A new connection must show its protocol (HTTP/2 preface or first HTTP/1.1 bytes, TLS handshake) within this. */
  handshakeTimeoutMs: number;
  /** An HTTP/2 session with no open stream for this long gets GOAWAY. */
  idleTimeoutMs: number;
  /** Max connection age, keepalive pings and the client-ping policy (src/transport/connection-lifetime.ts); without it, none. */
  lifetime?: ConnectionLifetime;
  /** The engine's gRPC (src/engine/grpc.ts): sees each HTTP/2 stream before Node's compat layer and the handler do. */
  onStream?: StreamHandler;
}

/**
 * Answers an HTTP/2 stream itself and returns true, or returns false without
 * touching it, and the stream goes on to the request handler as usual. A
 * stream it takes is its own to the end: once its trailers are sent, it calls
 * releaseAfterResponse(), as the listener does for the request handler's.
 */
export type StreamHandler = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => boolean;

/**
 * A listening port with a way to close it and every connection it accepted.
 * `server` is what was bound; the HTTP servers behind it never listen themselves.
 */
export interface Listener {
  readonly server: net.Server;
  /**
   * Stops accepting, sends GOAWAY to HTTP/2 sessions and closes idle HTTP/1.1
   * connections; requests in flight may finish until `forceAfterMs`, when
   * every connection left is destroyed. Resolves once all are gone.
   */
  close(forceAfterMs: number): Promise<void>;
}

/**
 * Plain text: HTTP/1.1 (curl, browsers) and HTTP/2 with prior knowledge
 * (gRPC) on one port. Node's h2c server cannot answer HTTP/1.1 (`allowHTTP1`
 * needs TLS), so each connection's first bytes decide which server gets it.
 */
export function createPlaintextListener(handler: RequestHandler, options: ListenerOptions): Listener {
  const h1 = http.createServer(options.http1, handler);
  const h2 = http2.createServer(options.http2, handler);
  const server = net.createServer((socket) => sniff(socket, h1, h2, options.handshakeTimeoutMs));
  // http.Server only runs its header/request timeout checks once it believes it is listening.
  server.on("listening", () => h1.emit("listening"));
  const lifetime = options.lifetime;
  if (lifetime !== undefined && lifetime.maxAgeMs > 0) {
    h1.on("connection", (socket: net.Socket) => watchHttp1Socket(socket, lifetime));
    h1.prependListener("request", closeAgedHttp1);
  }
  return track(server, h2, options, {
    closeIdle: () => h1.closeIdleConnections(),
    // It never listened, so close() only stops its timeout checks (and reports "not running").
    stop: () => h1.close(() => {}),
  });
}

/** TLS: ALPN picks h2 or http/1.1 on the same port. */
export function createTlsListener(
  handler: RequestHandler,
  tls: { cert: Buffer; key: Buffer },
  options: ListenerOptions,
): Listener {
  const server = http2.createSecureServer(
    {
      ...options.http2,
      // The HTTP/1.1 fallback reads its options from the same object.
      ...(options.http1 as http2.SecureServerOptions),
      cert: tls.cert,
      key: tls.key,
      allowHTTP1: true,
      ALPNProtocols: ["h2", "http/1.1"],
      handshakeTimeout: options.handshakeTimeoutMs,
    },
    handler,
  );
  // The HTTP/1.1 fallback is the server itself (closeIdleConnections is missing from @types/node).
  const h1 = server as unknown as http.Server;
  const lifetime = options.lifetime;
  if (lifetime !== undefined && lifetime.maxAgeMs > 0) {
    server.on("secureConnection", (socket: TLSSocket) => {
      if (socket.alpnProtocol !== "h2") watchHttp1Socket(socket, lifetime);
    });
    // HTTP/2 requests pass here too; their sockets carry no age, so they are left alone.
    h1.prependListener("request", closeAgedHttp1);
  }
  return track(server, server, options, { closeIdle: () => h1.closeIdleConnections(), stop: () => {} });
}

function sniff(socket: net.Socket, h1: http.Server, h2: http2.Http2Server, timeoutMs: number): void {
  let received: Buffer = Buffer.alloc(0);
  // A deadline, not an inactivity timer: a client dripping the preface a byte at a time is cut off too.
  const timer = timeoutMs > 0 ? setTimeout(() => socket.destroy(), timeoutMs) : undefined;
  const onData = (chunk: Buffer) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const n = Math.min(received.length, h2Preface.length);
    const looksLikeH2 = received.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (looksLikeH2 && n < h2Preface.length) return; // undecided: wait for more bytes
    clearTimeout(timer);
    socket.off("data", onData);
    socket.off("error", onError);
    socket.pause();
    socket.unshift(received);
    if (looksLikeH2) {
      h2.emit("connection", socket); // hands the buffered preface to the session itself
    } else {
      h1.emit("connection", socket);
      socket.resume(); // http.Server reads the handle directly; the unshifted bytes flow as "data"
    }
  };
  // A reset before the first bytes must not reach the process as an unhandled error.
  const onError = () => socket.destroy();
  socket.on("data", onData);
  socket.on("error", onError);
  socket.once("close", () => clearTimeout(timer));
}

function track(
  server: net.Server,
  h2: http2.Http2Server | http2.Http2SecureServer,
  options: ListenerOptions,
  h1: { closeIdle(): void; stop(): void },
): Listener {
  const sockets = new Set<net.Socket | TLSSocket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  hookStreams(h2, options.onStream);
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  h2.on("session", (session: WatchedSession) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    if (options.idleTimeoutMs > 0) session[kIdle] = new IdleWatch(session, options.idleTimeoutMs, options.handshakeTimeoutMs);
    if (options.lifetime !== undefined) watchSession(session, options.lifetime);
  });
  return {
    server,
    close(forceAfterMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close(); // GOAWAY: in-flight streams finish
      h1.closeIdle();
      h1.stop();
      const timer = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, forceAfterMs);
      // HTTP/1.1 connections that become idle later are closed as their requests end.
      const idleSweep = setInterval(() => h1.closeIdle(), 50);
      return closed.finally(() => {
        clearTimeout(timer);
        clearInterval(idleSweep);
      });
    },
  };
}

/**
 * Every stream passes here first: the idle watch counts it, then `onStream`
 * (the engine's gRPC) may take it; the rest go to Node's compat layer (the
 * server's one "stream" listener, added for the request handler), with the
 * same arguments, and are released after their response.
 */
function hookStreams(h2: http2.Http2Server | http2.Http2SecureServer, onStream: StreamHandler | undefined): void {
  const compat = h2.listeners("stream") as Array<(...args: unknown[]) => void>;
  if (compat.length !== 1) throw new Error(`expected Node's compat "stream" listener alone, found ${compat.length}`);
  h2.removeAllListeners("stream");
  // Node emits (stream, headers, flags, rawHeaders); named, so no arguments array is built per stream.
  h2.on("stream", function (this: unknown, stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) {
    const idle = (stream.session as WatchedSession | undefined)?.[kIdle];
    if (idle !== undefined) {
      idle.streamOpened();
      stream.on("close", idle.streamClosed);
    }
    if (onStream?.(stream, headers)) return;
    compat[0]!.call(this, stream, headers, flags, rawHeaders);
    // After the compat layer's own listener, which sends the trailers (emitted once per stream).
    stream.on("wantTrailers", onTrailersDue);
  });
}

// Per-stream work is done by functions made once per session or module: no closures per stream on the hot path.
const kIdle = Symbol("listener.idle");
type WatchedSession = http2.ServerHttp2Session & { [kIdle]?: IdleWatch };

/**
 * Like grpc-go's MaxConnectionIdle: a session without streams for `idleMs`
 * gets GOAWAY, and is destroyed if it has not closed `closingMs` later (a
 * client stuck in the middle of a header block keeps nghttp2 from closing).
 */
class IdleWatch {
  #open = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    readonly session: http2.ServerHttp2Session,
    readonly idleMs: number,
    readonly closingMs: number,
  ) {
    this.#arm();
    session.once("close", () => clearTimeout(this.#timer));
  }

  streamOpened(): void {
    this.#open++;
    clearTimeout(this.#timer);
  }

  /** A "close" listener for each of the session's streams (which no longer know their session by then). */
  readonly streamClosed = (): void => {
    if (--this.#open === 0 && !this.session.closed) this.#arm();
  };

  #arm(): void {
    this.#timer = setTimeout(goAwayWhenIdle, this.idleMs, this);
  }

  goAway(): void {
    this.session.close();
    this.#timer = setTimeout(destroySession, this.closingMs, this.session);
  }
}

function goAwayWhenIdle(watch: IdleWatch): void {
  watch.goAway();
}

function destroySession(session: http2.ServerHttp2Session): void {
  session.destroy();
}

/**
 * When the response is complete (trailers included) but the client has not
 * ended its side, e.g. a stream ended by its deadline or by shutdown, reset
 * the stream with NO_ERROR (RFC 9113 §8.1). Otherwise it stays open until
 * the client ends it, holding a stream slot and a graceful close. For a
 * "wantTrailers" listener, after its sendTrailers(): Node hands trailers to
 * nghttp2 in a setImmediate, and nghttp2 sends a reset before anything queued
 * after it, so the reset is queued behind them.
 */
export function releaseAfterResponse(stream: http2.ServerHttp2Stream): void {
  // A client that already ended its side (every unary call) needs no reset.
  if (!stream.readableEnded) setImmediate(releaseIfOpen, stream);
}

/** For the compat layer's streams: its own listener sends the trailers. */
function onTrailersDue(this: http2.ServerHttp2Stream): void {
  releaseAfterResponse(this);
}

function releaseIfOpen(stream: http2.ServerHttp2Stream): void {
  if (!stream.closed && !stream.destroyed && stream.state.remoteClose === 0) {
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
  }
}
