// The page's files, as the server serves them beside the RPCs on the same port.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { buildWeb } from "../scripts/build-web.js";
import { createStaticHandler } from "../src/http/static.js";
import { startTestServer, type RunningServer } from "./support/server.js";

let server: RunningServer;
before(async () => {
  await buildWeb();
  server = await startTestServer();
});
after(() => server.close());

/** A raw request: fetch() would normalise `..` and percent-escapes before they reach the server. */
function request(method: string, path: string, headers: http.OutgoingHttpHeaders = {}) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request(`${server.url}${path}`, { method, headers, path }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the page's files", () => {
  it("serves the page at / as HTML with a content security policy", async () => {
    const res = await request("GET", "/");
    assert.equal(res.status, 200);
    assert.equal(res.headers["content-type"], "text/html; charset=utf-8");
    assert.match(String(res.headers["content-security-policy"]), /default-src 'self'/);
    assert.match(res.body, /<script type="module" src="app.js"><\/script>/);
  });

  for (const [path, type] of [
    ["/index.html", "text/html; charset=utf-8"],
    ["/app.js", "text/javascript; charset=utf-8"],
    ["/style.css", "text/css; charset=utf-8"],
    ["/app.js.map", "application/json; charset=utf-8"],
  ] as const) {
    it(`serves ${path} as ${type}`, async () => {
      const res = await request("GET", path);
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-type"], type);
      assert.equal(res.headers["x-content-type-options"], "nosniff");
      assert.equal(Number(res.headers["content-length"]), Buffer.byteLength(res.body));
    });
  }

  it("bundles connect-web and the generated schemas into app.js", async () => {
    const { body } = await request("GET", "/app.js");
    assert.match(body, /RouteGuide/);
    assert.match(body, /application\/grpc-web\+proto/);
    assert.doesNotMatch(body, /^import /m, "the bundle must not load modules at run time");
  });

  it("lets browsers revalidate the fixed file names: no-cache, ETag, 304", async () => {
    const first = await request("GET", "/app.js");
    assert.equal(first.headers["cache-control"], "no-cache");
    const etag = first.headers.etag!;
    assert.match(etag, /^"[\w-]+"$/);
    const again = await request("GET", "/app.js", { "if-none-match": etag });
    assert.equal(again.status, 304);
    assert.equal(again.body, "");
    const changed = await request("GET", "/app.js", { "if-none-match": '"something-else"' });
    assert.equal(changed.status, 200);
  });

  it("answers HEAD with the headers only", async () => {
    const res = await request("HEAD", "/style.css");
    assert.equal(res.status, 200);
    assert.ok(Number(res.headers["content-length"]) > 0);
    assert.equal(res.body, "");
  });

  it("refuses other methods on its files with 405 and Allow", async () => {
    const res = await request("POST", "/app.js");
    assert.equal(res.status, 405);
    assert.equal(res.headers.allow, "GET, HEAD");
  });

  for (const path of [
    "/nope.js",
    "/main.ts",
    "/../package.json",
    "/..%2Fpackage.json",
    "/%2e%2e/%2e%2e/package.json",
    "/web/index.html",
    "/.%2E/src/server.ts",
    "/%00app.js",
    "/%E0%A4%A",
    "//etc/passwd",
  ]) {
    it(`answers ${path} with 404`, async () => {
      const res = await request("GET", path);
      assert.equal(res.status, 404);
      assert.doesNotMatch(res.body, /"name"|import|routeguide/i);
    });
  }

  it("leaves unknown RPC paths a 404, as gRPC clients expect (UNIMPLEMENTED)", async () => {
    const res = await request("POST", "/RouteGuide/NoSuchMethod", { "content-type": "application/grpc" });
    assert.equal(res.status, 404);
  });
});

describe("a server started without the built page", () => {
  it("says at / how to build it", async () => {
    const empty = await mkdtemp(join(tmpdir(), "routeguide-web-"));
    const bare = http.createServer(createStaticHandler(empty)).listen(0, "127.0.0.1");
    await once(bare, "listening");
    try {
      const res = await fetch(`http://127.0.0.1:${(bare.address() as AddressInfo).port}/`);
      assert.equal(res.status, 404);
      assert.match(await res.text(), /npm run build:web/);
    } finally {
      bare.close();
      bare.closeAllConnections();
      await rm(empty, { recursive: true });
    }
  });
});
