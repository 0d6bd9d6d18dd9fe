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
  return middleware as unknown as CorsMiddleware;
}
