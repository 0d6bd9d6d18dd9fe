import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { RequestHandler } from "../transport/listener.js";

/** Where `npm run build:web` (run by `npm start`) puts the page: git-ignored, rebuilt from web/. */
export const webBundleDir = fileURLToPath(new URL("../../out/web/", import.meta.url));

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

/** The page only talks to the origin that served it; nothing else may load or run. */
const pagePolicy =
  "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/**
 * Serves the files at the top of `dir` to GET and HEAD; `/` is index.html.
 * Only plain file names are looked up (no slash, no leading dot), so no URL
 * reaches outside `dir`. The names carry no content hash, so browsers
 * revalidate every time (`no-cache`) and get a 304 while the ETag matches.
 */
export function createStaticHandler(dir: string): RequestHandler {
  return (req, response) => {
    // Http2ServerResponse has the same writeHead/end; one type keeps the calls simple.
    const res = response as ServerResponse;
    const name = fileName(req.url ?? "/");
    const type = name === undefined ? undefined : contentTypes[extname(name)];
    if (name === undefined || type === undefined) return notFound(res, "Not found\n");
    readFile(join(dir, name)).then(
      (body) => {
        if (req.method !== "GET" && req.method !== "HEAD") {
          res.writeHead(405, { allow: "GET, HEAD", "content-length": 0 }).end();
          return;
        }
        const headers = {
          "cache-control": "no-cache",
          etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`,
          "x-content-type-options": "nosniff",
          ...(type.startsWith("text/html") && { "content-security-policy": pagePolicy }),
        };
        if (req.headers["if-none-match"] === headers.etag) {
          res.writeHead(304, headers).end();
          return;
        }
        res.writeHead(200, { ...headers, "content-type": type, "content-length": body.length });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: NodeJS.ErrnoException) => {
        if (err.code !== "ENOENT") {
          res.writeHead(500, { "content-type": "text/plain; charset=utf-8" }).end(`cannot read ${name}\n`);
        } else if (name === "index.html") {
          // `tsx src/main.ts` skips the build that npm start runs first.
          notFound(res, "The web page is not built: run npm run build:web (npm start does it for you).\n");
        } else {
          notFound(res, "Not found\n");
        }
      },
    );
  };
}

/** The file a URL path names, or undefined when it is anything but a plain file name. */
function fileName(url: string): string | undefined {
  const path = url.split("?")[0]!;
  if (path === "/") return "index.html";
  let name: string;
  try {
    name = decodeURIComponent(path.slice(1));
  } catch {
    return undefined;
  }
  return /^[\w-][\w.-]*$/.test(name) ? name : undefined;
}

function notFound(res: ServerResponse, text: string): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text) });
  res.end(text);
}
