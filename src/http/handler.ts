import type { ServerResponse } from "node:http";
import { Code, ConnectError, type ContextValues } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { pathOf } from "../engine/headers.js";
import type { HttpProtocol, Request, Response } from "../engine/http-call.js";
import type { RouteTable } from "../engine/route-table.js";
import type { RequestHandler } from "../transport/listener.js";
import { cacheByOutcome, varyOnAcceptEncoding } from "./cache.js";
import { createCorsMiddleware } from "./cors.js";
import { createRequestGuard } from "./request-guard.js";

export interface HandlerOptions {
  /** The router, built once (src/engine/route-table.ts). */
  table: RouteTable;
  corsOrigins: string[];
  /** connect-node's `contextValues`: what interceptors find on connect-node's path. */
  contextValues: (req: Request) => ContextValues;
  /** The encodings the router accepts, named in every RPC reply. */
  acceptEncodings: string[];
  /** The engine's protocols on Node's request API (Connect and gRPC-Web unary); each takes what it serves. */
  engine?: HttpProtocol[];
  /** Plain HTTP endpoints beside the RPCs, by exact path (e.g. /healthz, /metrics). */
  endpoints?: Record<string, RequestHandler>;
  /** Whatever is neither an RPC nor an endpoint (e.g. the web page); a 404 when absent. */
  fallback?: RequestHandler;
  /** Longest deadline a call gets (0: none); see capDeadline in src/transport/limits.ts. */
  maxDeadlineMs?: number;
  /** The router's shutdownSignal, which the request guard applies to bodies being read. */
  shutdownSignal?: AbortSignal;
}

/**
 * The request pipeline every connection shares: CORS, plain endpoints,
 * HTTP/2-only streams, the request guard, then the engine or connect-node's
 * general path over the same router.
 */
export function createHttpHandler(options: HandlerOptions): RequestHandler {
  const cors = createCorsMiddleware(options.corsOrigins);
  const { table } = options;
  const general = generalPath(table, options.contextValues, options.fallback);
  const guard = createRequestGuard({
    maxDeadlineMs: options.maxDeadlineMs ?? 0,
    acceptEncodings: options.acceptEncodings,
    rpcPaths: new Set(table.handlers.keys()),
    ...(options.shutdownSignal && { shutdownSignal: options.shutdownSignal }),
  });
  const endpoints = new Map(Object.entries(options.endpoints ?? {}));
  const engine = options.engine ?? [];
  const takenByEngine = (req: Request, res: Response): boolean => {
    for (const take of engine) if (take(req, res)) return true;
    return false;
  };
  return (req, res) =>
    cors(req, res, () => {
      const path = pathOf(req.url);
      const endpoint = endpoints.get(path);
      if (endpoint) return endpoint(req, res);
      if (req.httpVersionMajor === 1 && table.needsHttp2.has(path)) return rejectStreamOverHttp1(path, res as ServerResponse);
      if (req.method === "GET") {
        varyOnAcceptEncoding(res);
        if (table.handlers.has(path)) cacheByOutcome(res);
      }
      if (!guard.check(req, res) || takenByEngine(req, res)) return;
      guard.guardBody(req, res);
      general(req, res);
    });
}


/** connectNodeAdapter's request handler, over the router the engine shares instead of one of its own. */
function generalPath(table: RouteTable, contextValues: (req: Request) => ContextValues, fallback: RequestHandler | undefined): RequestHandler {
  return (req, res) => {
    const handler = table.handlers.get(pathOf(req.url));
    if (handler === undefined) {
      if (fallback) return fallback(req, res);
      (res as ServerResponse).writeHead(404);
      res.end();
      return;
    }
    const uReq = universalRequestFromNodeRequest(req, res as never, undefined, contextValues(req));
    handler(uReq)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        console.error(`handler for rpc ${handler.method.name} of ${handler.service.typeName} failed`, reason);
      });
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
