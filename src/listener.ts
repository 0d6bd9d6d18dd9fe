import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { TLSSocket } from "node:tls";

export type RequestHandler = (
  req: http.IncomingMessage | http2.Http2ServerRequest,
  res: http.ServerResponse | http2.Http2ServerResponse,
) => void;

/** Every client speaks HTTP/2 first with exactly these bytes (RFC 9113 §3.4). */
const h2Preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");

/** How long a new connection may stay silent before we know its protocol. */
const sniffTimeoutMs = 10_000;

/**
 * A listening port with a way to close it and every connection it accepted.
 * `server` is what was bound; the HTTP servers behind it never listen themselves.
 */
export interface Listener {
  readonly server: net.Server;
  /** Stops accepting, sends GOAWAY / closes idle keep-alives, and resolves once all connections are gone. */
  close(graceMs: number): Promise<void>;
}

/**
 * Plain text: HTTP/1.1 (curl, browsers) and HTTP/2 with prior knowledge
 * (gRPC) on one port. Node's h2c server cannot answer HTTP/1.1 (`allowHTTP1`
 * needs TLS), so each connection's first bytes decide which server gets it.
 */
export function createPlaintextListener(handler: RequestHandler): Listener {
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  const server = net.createServer((socket) => sniff(socket, h1, h2));
  // http.Server only runs its header/request timeout checks once it believes it is listening.
  server.on("listening", () => h1.emit("listening"));
  return track(server, h1, h2);
}

/** TLS: ALPN picks h2 or http/1.1 on the same port. */
export function createTlsListener(handler: RequestHandler, tls: { cert: Buffer; key: Buffer }): Listener {
  const server = http2.createSecureServer(
    { cert: tls.cert, key: tls.key, allowHTTP1: true, ALPNProtocols: ["h2", "http/1.1"] },
    handler,
  );
  return track(server, undefined, server);
}

function sniff(socket: net.Socket, h1: http.Server, h2: http2.Http2Server): void {
  let received: Buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const n = Math.min(received.length, h2Preface.length);
    const looksLikeH2 = received.subarray(0, n).equals(h2Preface.subarray(0, n));
    if (looksLikeH2 && n < h2Preface.length) return; // undecided: wait for more bytes
    socket.off("data", onData);
    socket.off("error", onError);
    socket.setTimeout(0);
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
  socket.setTimeout(sniffTimeoutMs, () => socket.destroy());
}

function track(server: net.Server, h1: http.Server | undefined, h2: http2.Http2Server | http2.Http2SecureServer): Listener {
  const sockets = new Set<net.Socket | TLSSocket>();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  return {
    server,
    close(graceMs) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const session of sessions) session.close(); // GOAWAY: in-flight streams finish
      h1?.closeIdleConnections();
      h1?.close(() => {}); // stops its timeout checks; it never listened, so the "not running" error is expected
      const timer = setTimeout(() => {
        for (const socket of sockets) socket.destroy();
      }, graceMs);
      // Idle HTTP/1.1 connections that become idle later are closed as their requests end.
      const idleSweep = setInterval(() => h1?.closeIdleConnections(), 50);
      return closed.finally(() => {
        clearTimeout(timer);
        clearInterval(idleSweep);
      });
    },
  };
}
