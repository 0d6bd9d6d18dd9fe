import type http from "node:http";
import type http2 from "node:http2";

/**
 * What one client may cost the server: sizes, counts and time. Every field
 * has a flag (see `usage` in config.ts) and a default that real clients
 * never hit.
 */
export interface Limits {
  /** Largest request message, after decompression; beyond it RESOURCE_EXHAUSTED (gRPC's 4 MiB convention). */
  maxMessageBytes: number;
  /** Largest request header block: HTTP/1.1 `maxHeaderSize`, HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE. */
  maxHeaderBytes: number;
  /** HTTP/2 streams one connection may have open at once; a client opening more loses the connection (GOAWAY). */
  maxConcurrentStreams: number;
  /** Memory one HTTP/2 session may hold (stream state, replies queued for a client that does not read) before new streams are refused. */
  maxSessionMemoryBytes: number;
  /** A new connection must say which protocol it speaks (preface, TLS handshake) and send its HTTP/1.1 headers within this. */
  headersTimeoutMs: number;
  /** An HTTP/1.1 request must arrive whole within this (HTTP/1.1 only carries unary calls). */
  requestTimeoutMs: number;
  /** An HTTP/1.1 connection waiting for its next request is closed after this. */
  keepAliveTimeoutMs: number;
  /** An HTTP/2 connection without an open stream gets GOAWAY after this. */
  idleTimeoutMs: number;
  /** Longest deadline a call gets; longer or absent deadlines are cut to it. 0: no maximum. */
  maxDeadlineMs: number;
}

const mebibyte = 1024 * 1024;

export function defaultLimits(): Limits {
  return {
    maxMessageBytes: 4 * mebibyte,
    maxHeaderBytes: 16 * 1024,
    maxConcurrentStreams: 100,
    maxSessionMemoryBytes: 10 * mebibyte,
    headersTimeoutMs: 10_000,
    requestTimeoutMs: 60_000,
    keepAliveTimeoutMs: 5_000,
    idleTimeoutMs: 300_000,
    maxDeadlineMs: 0,
  };
}

/** HTTP/1.1 server options, for the plain-text HTTP/1.1 server and the TLS server's HTTP/1.1 fallback. */
export function http1Options(limits: Limits): http.ServerOptions {
  return {
    maxHeaderSize: limits.maxHeaderBytes,
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    // Node checks the two timeouts above on this interval (30 s by default), so it bounds their precision.
    connectionsCheckingInterval: Math.min(1_000, Math.max(10, limits.headersTimeoutMs / 4)),
  };
}

/**
 * HTTP/2 server options. The flood protections are Node's and nghttp2's,
 * set explicitly so they are visible and tested: a peer exceeding them loses
 * its session, other peers carry on.
 */
export function http2Options(limits: Limits): http2.ServerOptions {
  return {
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderBytes,
    },
    maxSessionMemory: Math.max(1, Math.round(limits.maxSessionMemoryBytes / mebibyte)),
    // Frames that break the protocol (malformed header fields, ...) before the session is dropped.
    maxSessionInvalidFrames: 1000,
    // Streams refused (over the memory limit) or reset by the client before they were handled:
    // after 100 the session is dropped. Node's own Rapid Reset defence; it trips first (~100 resets).
    maxSessionRejectedStreams: 100,
    // Rapid Reset (CVE-2023-44487), nghttp2's defence: a bucket of 1000 client RST_STREAMs, refilled at 33 per second.
    streamResetBurst: 1000,
    streamResetRate: 33,
  };
}

/** The longest a Node timer can wait (about 24.8 days); setTimeout fires after 1 ms for anything longer. */
export const maxTimerMs = 2 ** 31 - 1;

/**
 * Cuts a call's deadline to `maxMs` (the --max-deadline flag), and gives
 * calls without one that deadline, by rewriting the timeout header before
 * Connect reads it. Connect's own `maxTimeoutMs` rejects longer deadlines
 * with INVALID_ARGUMENT and leaves calls without one unbounded; like
 * Envoy's `max_grpc_timeout`, clamping serves the client for as long as we
 * allow. With `maxMs` 0 (no maximum), deadlines are still cut to
 * `maxTimerMs`: gRPC allows 99,999,999 hours, and Connect's timer would
 * end such a call after 1 ms. Malformed values are left for Connect to reject.
 */
export function capDeadline(headers: http.IncomingHttpHeaders, maxMs: number): void {
  const configured = maxMs > 0;
  maxMs = configured ? Math.min(maxMs, maxTimerMs) : maxTimerMs;
  const isGrpc = (headers["content-type"] ?? "").startsWith("application/grpc");
  const name = isGrpc ? "grpc-timeout" : "connect-timeout-ms";
  const value = headers[name];
  if (value === undefined && !configured) return;
  const requestedMs = value === undefined ? Infinity : isGrpc ? grpcTimeoutMs(value) : connectTimeoutMs(value);
  if (requestedMs === undefined || requestedMs <= maxMs) return;
  // gRPC allows 8 digits: 99,999,999 ms is about 27 hours; beyond that, whole seconds.
  headers[name] = !isGrpc ? String(maxMs) : maxMs <= 99_999_999 ? `${maxMs}m` : `${Math.floor(maxMs / 1000)}S`;
}

const grpcTimeoutUnitMs: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

function grpcTimeoutMs(value: string | string[]): number | undefined {
  const match = typeof value === "string" ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  return match ? Number(match[1]) * grpcTimeoutUnitMs[match[2]!]! : undefined;
}

function connectTimeoutMs(value: string | string[]): number | undefined {
  return typeof value === "string" && /^\d{1,10}$/.test(value) ? Number(value) : undefined;
}
