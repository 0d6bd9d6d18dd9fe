import type http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { maxTimerMs } from "./limits.js";

/**
 * How long a connection may live and how the server notices a peer that
 * vanished: gRFC A9's max connection age, and gRPC's keepalive with its
 * policy for client pings (grpc core's doc/keepalive.md), which grpc-js's
 * server leaves out. Each has a flag (see `usage` in config.ts).
 */
export interface ConnectionLifetime {
  /** A connection older than this (±10%) gets GOAWAY `max_age` (HTTP/1.1: `connection: close`). 0: never. */
  maxAgeMs: number;
  /** After the age's GOAWAY, open streams get this long before the connection is closed. 0: as long as they need. */
  maxAgeGraceMs: number;
  /** An HTTP/2 connection on which nothing happened for this long gets a PING. 0: never. */
  keepaliveTimeMs: number;
  /** A PING not acknowledged within this closes the connection. */
  keepaliveTimeoutMs: number;
  /** Client PINGs closer together than this, with nothing sent by the server between them, are strikes. 0: any rate. */
  keepaliveMinTimeMs: number;
}

/**
 * grpc core's and grpc-go's server defaults: ping after 2 hours of silence,
 * give up 20 s later, and allow client pings every 5 minutes. Clients tuned
 * against any gRPC server then behave the same here. No age by default, as
 * there: it only helps when there is something to rebalance to.
 */
export function defaultConnectionLifetime(): ConnectionLifetime {
  return {
    maxAgeMs: 0,
    maxAgeGraceMs: 0,
    keepaliveTimeMs: 2 * 60 * 60_000,
    keepaliveTimeoutMs: 20_000,
    keepaliveMinTimeMs: 5 * 60_000,
  };
}

/** grpc core's GRPC_ARG_HTTP2_MAX_PING_STRIKES: the third ping too early ends the connection. */
const maxPingStrikes = 2;
/** A PING frame on the wire: a 9-byte frame header and 8 bytes of payload. */
const pingFrameBytes = 17;
/** gRFC A9: ages are spread by ±10%, so connections opened together do not all reconnect together. */
const ageJitter = 0.1;
/** HTTP/2 stream identifiers are 31 bits: a GOAWAY with the highest one still lets every stream in flight in. */
const maxStreamId = 2 ** 31 - 1;

const maxAgeData = Buffer.from("max_age");
const tooManyPingsData = Buffer.from("too_many_pings");

/** Never past Node's longest timer: beyond it, setTimeout would fire after 1 ms. */
function jittered(ms: number): number {
  return Math.min(maxTimerMs, ms * (1 - ageJitter + 2 * ageJitter * Math.random()));
}

/** Watches one HTTP/2 session for its whole life: age, keepalive, client pings. */
export function watchSession(session: http2.ServerHttp2Session, lifetime: ConnectionLifetime): void {
  const timers = new Set<NodeJS.Timeout>();
  const after = (ms: number, run: () => void) => {
    const timer = setTimeout(() => {
      timers.delete(timer);
      run();
    }, ms);
    timers.add(timer);
    return timer;
  };
  session.once("close", () => {
    for (const timer of timers) clearTimeout(timer);
  });
  // The client-ping policy tells the ACKs of client pings from data by counting every PING frame written.
  let pingsSent = 0;
  const ping = (callback: (err: Error | null) => void) => {
    pingsSent++;
    return session.ping(callback);
  };

  if (lifetime.maxAgeMs > 0) {
    after(jittered(lifetime.maxAgeMs), () => {
      if (session.closed || session.destroyed) return;
      // As grpc-js's server does: a GOAWAY with the highest stream id and the debug data gRPC clients
      // log, then Node's close(), whose GOAWAY names the last stream processed. Waiting for a PING
      // round trip between the two (grpc core's way) lost calls here: grpc-js and grpcio 1.51 clients
      // then left calls they had just started unsent until their deadline (measured 2026-12, Node 24.21).
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, maxStreamId, maxAgeData);
      session.close();
      if (lifetime.maxAgeGraceMs > 0) after(lifetime.maxAgeGraceMs, () => session.destroy());
    });
  }

  if (lifetime.keepaliveTimeMs > 0) {
    // Node's session timeout restarts on every frame read or written, so it fires after that much silence.
    session.setTimeout(lifetime.keepaliveTimeMs);
    session.on("timeout", () => {
      if (session.destroyed) return;
      const deadline = after(lifetime.keepaliveTimeoutMs, () => session.destroy());
      const sent = ping((err) => {
        clearTimeout(deadline);
        timers.delete(deadline);
        if (err === null) session.setTimeout(lifetime.keepaliveTimeMs);
      });
      // Node refuses a ping when too many are unanswered already: the peer is not answering.
      if (!sent) session.destroy();
    });
  }

  if (lifetime.keepaliveMinTimeMs > 0) policeClientPings(session, lifetime.keepaliveMinTimeMs, () => pingsSent);
}

/**
 * gRPC's ping policy: a client ping within `minTimeMs` of the previous one
 * is a strike unless the server sent something (headers, data) in between;
 * after `maxPingStrikes`, GOAWAY ENHANCE_YOUR_CALM "too_many_pings", which
 * gRPC clients read as "ping less often" (grpc-js doubles its keepalive time).
 * What the server sent is read from the socket's byte count, less the PING
 * frames it wrote, so no hook runs per frame or stream.
 */
function policeClientPings(session: http2.ServerHttp2Session, minTimeMs: number, pingsSent: () => number): void {
  const socket = session.socket as net.Socket;
  let lastPingAt = -Infinity;
  let strikes = 0;
  let pings = 0;
  let otherBytesBefore = 0;
  session.on("ping", () => {
    const now = performance.now();
    pings++;
    // PING ACKs are the only frames written for pings; whether this ping's ACK is already out is
    // not known here, so a change of one PING frame or less is not data.
    const otherBytes = socket.bytesWritten - pingFrameBytes * (pings + pingsSent());
    const sentData = otherBytes - otherBytesBefore > pingFrameBytes;
    otherBytesBefore = otherBytes;
    if (sentData) strikes = 0;
    else if (now - lastPingAt < minTimeMs && ++strikes > maxPingStrikes) {
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, tooManyPingsData);
      // As grpc core does: the connection ends now (destroy() writes what is queued first).
      session.destroy();
      return;
    }
    lastPingAt = now;
  });
}

const kAgeDeadline = Symbol("connection-lifetime.ageDeadline");
type AgedSocket = net.Socket & { [kAgeDeadline]?: number };

/** For each HTTP/1.1 connection as it is accepted: from when on its responses close it. */
export function watchHttp1Socket(socket: net.Socket, lifetime: ConnectionLifetime): void {
  if (lifetime.maxAgeMs > 0) (socket as AgedSocket)[kAgeDeadline] = performance.now() + jittered(lifetime.maxAgeMs);
}

/**
 * A "request" listener that runs before the handler: HTTP/1.1 has no
 * GOAWAY, so a request that arrives after its connection's age is answered
 * with `connection: close`, and the client opens a new connection for the next.
 */
export function closeAgedHttp1(req: http.IncomingMessage, res: http.ServerResponse): void {
  const deadline = (req.socket as AgedSocket)[kAgeDeadline];
  if (deadline !== undefined && performance.now() >= deadline) res.setHeader("connection", "close");
}
