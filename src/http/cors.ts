import { cors as connectCors } from "@connectrpc/connect";
import createCors from "cors";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";

type Next = (err?: unknown) => void;
export type CorsMiddleware = (
  req: IncomingMessage | Http2ServerRequest,
  res: ServerResponse | Http2ServerResponse,
  next: Next,
) => void;

/**
 * CORS for browsers on other origins, with the methods and headers that the
 * Connect, gRPC-Web and gRPC protocols need (as Connect itself lists them).
 */
export function createCorsMiddleware(origins: string[]): CorsMiddleware {
  const middleware = createCors({
    origin: origins.includes("*") ? "*" : origins,
    methods: [...connectCors.allowedMethods],
    allowedHeaders: [...connectCors.allowedHeaders],
    exposedHeaders: [...connectCors.exposedHeaders],
    // Browsers cache the preflight answer for up to two hours (Chromium's cap).
    maxAge: 7200,
  });
  return (req, res, next) => {
    // Browsers send Origin with every cross-origin request (and with every POST), so CORS
    // headers in the answer to a request without one can only help when a cache hands that
    // answer to a browser later, and caches keep GET answers, not POST ones. So a POST without
    // Origin (every gRPC call, curl's) skips the middleware, as Go's rs/cors skips any request
    // without Origin; on a busy server that is two headers and a few µs less per call.
    if (req.method === "POST" && req.headers.origin === undefined) return next();
    middleware(req as never, res as never, next);
  };
}
