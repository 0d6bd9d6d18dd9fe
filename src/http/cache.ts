import type { ServerResponse } from "node:http";
import type { Http2ServerResponse } from "node:http2";

/** How long browsers and CDNs may reuse a person: the directory only changes when the server restarts. */
export const getMaxAgeSeconds = 60;

/**
 * Cache-Control for Connect GET calls, which are only answered for methods
 * marked NO_SIDE_EFFECTS: a success (200) is public for a minute; an error
 * is kept nowhere, since errors may be transient and a NOT_FOUND stops being
 * true when the data changes. Decided on the status as the response's head
 * goes out, whichever path answers, so no interceptor has to run for it on
 * every call. POST responses get none, which keeps them uncacheable.
 */
export function cacheByOutcome(res: ServerResponse | Http2ServerResponse): void {
  const out = res as ServerResponse & { [kWriteHead]?: ServerResponse["writeHead"] };
  out[kWriteHead] = out.writeHead;
  out.writeHead = writeHeadWithCacheControl as ServerResponse["writeHead"];
}

const kWriteHead = Symbol("cache.writeHead");

function writeHeadWithCacheControl(this: ServerResponse & { [kWriteHead]: ServerResponse["writeHead"] }, status: number, ...rest: unknown[]) {
  this.setHeader("cache-control", status === 200 ? `public, max-age=${getMaxAgeSeconds}` : "no-store");
  return (this[kWriteHead] as (...args: unknown[]) => ServerResponse).call(this, status, ...rest);
}

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
