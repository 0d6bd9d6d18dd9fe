import type { ServerResponse } from "node:http";
import { createConnectRouter, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter, type ConnectNodeAdapterOptions } from "@connectrpc/connect-node";
import { cacheGetResponses, varyOnAcceptEncoding } from "./cache.js";
import { createCorsMiddleware } from "./cors.js";
import { type FastPath, routerSettings } from "../fast-unary.js";
import type { RequestHandler } from "../transport/listener.js";
import { createRequestGuard } from "./request-guard.js";

export interface HandlerOptions {
  routes: (router: ConnectRouter) => void;
  corsOrigins: string[];
  /** Router settings: limits, interceptors, context values. */
  connect?: Omit<ConnectNodeAdapterOptions, "routes" | "fallback">;
  /** Plain HTTP endpoints beside the RPCs, by exact path (e.g. /healthz, /metrics). */
  endpoints?: Record<string, RequestHandler>;
  /** Whatever is neither an RPC nor an endpoint (e.g. the web page); a 404 when absent. */
  fallback?: RequestHandler;
  /** Longest deadline a call gets (0: none); see capDeadline in src/transport/limits.ts. */
  maxDeadlineMs?: number;
  /** Each answers the calls it fully handles before connect-node sees them (src/fast-unary.ts); the rest go on. */
  fastPaths?: FastPath[];
}

/** The request pipeline every connection shares: CORS, plain endpoints, HTTP/2-only streams, then the Connect router. */
export function createHttpHandler(options: HandlerOptions): RequestHandler {
  const cors = createCorsMiddleware(options.corsOrigins);
  const connect = connectNodeAdapter({
    ...options.connect,
    // Outermost, so the cache headers follow the call's final outcome.
    interceptors: [cacheGetResponses, ...(options.connect?.interceptors ?? [])],
    routes: options.routes,
    ...(options.fallback && { fallback: options.fallback as ConnectNodeAdapterOptions["fallback"] }),
  }) as RequestHandler;
  const { rpcPaths, needsHttp2 } = requestPaths(options.routes);
  const guard = createRequestGuard({
    maxDeadlineMs: options.maxDeadlineMs ?? 0,
    acceptEncodings: routerSettings(options.connect ?? {}).acceptCompression.map((c) => c.name),
    rpcPaths,
  });
  const endpoints = new Map(Object.entries(options.endpoints ?? {}));
  const fastPaths = options.fastPaths ?? [];
  const takenByFastPath: FastPath = (req, res) => {
    for (const take of fastPaths) if (take(req, res)) return true;
    return false;
  };
  return (req, res) =>
    cors(req, res, () => {
      const path = req.url?.split("?")[0] ?? "";
      const endpoint = endpoints.get(path);
      if (endpoint) return endpoint(req, res);
      if (req.httpVersionMajor === 1 && needsHttp2.has(path)) return rejectStreamOverHttp1(path, res as ServerResponse);
      if (req.method === "GET") varyOnAcceptEncoding(res);
      if (guard(req, res) && !takenByFastPath(req, res)) connect(req, res);
    });
}

/**
 * Paths of every RPC the routes serve, and of those whose requests stream:
 * they need HTTP/2, which browsers and plain curl don't speak.
 */
function requestPaths(routes: (router: ConnectRouter) => void): { rpcPaths: Set<string>; needsHttp2: Set<string> } {
  const router = createConnectRouter();
  routes(router);
  const streaming = router.handlers.filter(
    (h) => h.method.methodKind === "bidi_streaming" || h.method.methodKind === "client_streaming",
  );
  return {
    rpcPaths: new Set(router.handlers.map((h) => h.requestPath)),
    needsHttp2: new Set(streaming.map((h) => h.requestPath)),
  };
}

/**
 * connect-node answers these with a bare 505; say why, in the Connect error
 * shape curl users and fetch() can read. Closing the connection stops the
 * client's upload, which would otherwise keep the socket busy.
 */
function rejectStreamOverHttp1(path: string, res: ServerResponse): void {
  const body = JSON.stringify({
    code: "unimplemented",
    message:
      `${path.slice(1)} streams requests, which needs HTTP/2: use gRPC or Connect over HTTP/2 ` +
      `(e.g. curl --http2-prior-knowledge, or TLS). Browsers cannot stream request bodies; ` +
      `call GetPerson once per name instead.`,
  });
  res.writeHead(505, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    connection: "close",
  });
  res.end(body);
}
