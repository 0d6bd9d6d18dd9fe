import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";
import { ConnectError, type Interceptor } from "@connectrpc/connect";

/** How long browsers and CDNs may reuse a person: the directory only changes when the server restarts. */
export const getMaxAgeSeconds = 60;

/**
 * Cache-Control for Connect GET calls, which connect-node only answers for
 * methods marked NO_SIDE_EFFECTS (GetPerson). An interceptor, because only it
 * knows whether the call succeeded; the headers it sets go out with
 * connect-node's writeHead. POST responses (Connect, gRPC-Web, gRPC) get none,
 * which keeps them uncacheable.
 */
export const cacheGetResponses: Interceptor = (next) => async (req) => {
  if (req.requestMethod !== "GET") return next(req);
  try {
    const res = await next(req);
    res.header.set("cache-control", `public, max-age=${getMaxAgeSeconds}`);
    return res;
  } catch (err) {
    // Errors may be transient, and a NOT_FOUND stops being true when the data changes: keep none.
    if (err instanceof ConnectError) err.metadata.set("cache-control", "no-store");
    throw err;
  }
};

/**
 * A GET's response depends on Accept-Encoding too (connect-node compresses
 * large ones). Set before the adapter runs and appended, because a Vary from
 * the interceptor would replace the `Vary: Origin` that CORS adds for a list
 * of origins.
 */
export function varyOnAcceptEncoding(res: ServerResponse | Http2ServerResponse): void {
  const vary = res.getHeader("vary");
  res.setHeader("vary", vary === undefined ? "Accept-Encoding" : `${String(vary)}, Accept-Encoding`);
}
