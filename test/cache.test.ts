// Cache headers: a successful Connect GET of GetPerson may be kept by browsers
// and CDNs for a minute; errors and POSTs must not be kept. CORS headers go
// wherever a browser may see the answer.
import assert from "node:assert/strict";
import http2 from "node:http2";
import { after, before, describe, it } from "node:test";
import { startTestServer, type RunningServer } from "./support/server.js";
import { envelope, h2Request, nameBytes } from "./support/raw.js";


const getUrl = (base: string, name: string) =>
  `${base}/RouteGuide/GetPerson?connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ name }))}`;

const postJson = (base: string, name: string) =>
  fetch(`${base}/RouteGuide/GetPerson`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name }),
  });

// The fast path answers Connect GETs itself; without it connect-node does, through src/http/cache.ts's interceptor.
for (const fastPath of [true, false]) {
  describe(`cache headers (fast path ${fastPath ? "on" : "off"})`, () => {
    let server: RunningServer;
    before(async () => (server = await startTestServer({ fastPath })));
    after(() => server.close());

    describe("over HTTP/1.1", () => {
      it("a successful GET is public for 60 seconds and varies by Accept-Encoding", async () => {
        const res = await fetch(getUrl(server.url, "Alice"));
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("cache-control"), "public, max-age=60");
        assert.equal(res.headers.get("vary"), "Accept-Encoding");
        assert.equal((await res.json()).name, "Alice");
      });

      it("a NOT_FOUND GET is not stored", async () => {
        const res = await fetch(getUrl(server.url, "Charlie"));
        assert.equal(res.status, 404);
        assert.equal(res.headers.get("cache-control"), "no-store");
      });

      it("an INVALID_ARGUMENT GET is not stored", async () => {
        const res = await fetch(getUrl(server.url, ""));
        assert.equal(res.status, 400);
        assert.equal(res.headers.get("cache-control"), "no-store");
      });

      it("a POST gets no cache headers, so HTTP keeps it uncacheable", async () => {
        const res = await postJson(server.url, "Alice");
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("cache-control"), null);
      });

      it("a gRPC-Web POST gets no cache headers", async () => {
        const name = Buffer.from([0x0a, 5, ...Buffer.from("Alice")]);
        const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, name.length]), name]);
        const res = await fetch(`${server.url}/RouteGuide/GetPerson`, {
          method: "POST",
          headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
          body: frame,
        });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("cache-control"), null);
      });
    });

    describe("with a list of CORS origins", () => {
      let restricted: RunningServer;
      before(async () => (restricted = await startTestServer({ fastPath, corsOrigins: ["http://app.example"] })));
      after(() => restricted.close());

      it("keeps CORS's Vary: Origin beside Accept-Encoding", async () => {
        const res = await fetch(getUrl(restricted.url, "Bob"), { headers: { origin: "http://app.example" } });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("access-control-allow-origin"), "http://app.example");
        assert.equal(res.headers.get("vary"), "Origin, Accept-Encoding");
        assert.equal(res.headers.get("cache-control"), "public, max-age=60");
      });
    });

    describe("CORS headers, which a cache may hand to a browser", () => {
      it("a GET without Origin carries them: a CDN may serve the answer to a page on another origin", async () => {
        const res = await fetch(getUrl(server.url, "Alice"));
        assert.equal(res.headers.get("access-control-allow-origin"), "*");
        assert.match(res.headers.get("access-control-expose-headers") ?? "", /Grpc-Status/i);
      });

      it("a POST without Origin (curl, any non-browser client) gets none: no cache keeps it", async () => {
        const res = await postJson(server.url, "Alice");
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("access-control-allow-origin"), null);
        assert.equal(res.headers.get("access-control-expose-headers"), null);
      });

      it("a POST with Origin, as browsers send it, gets them", async () => {
        const res = await fetch(`${server.url}/RouteGuide/GetPerson`, {
          method: "POST",
          headers: { "content-type": "application/json", origin: "http://page.example" },
          body: JSON.stringify({ name: "Alice" }),
        });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("access-control-allow-origin"), "*");
        assert.match(res.headers.get("access-control-expose-headers") ?? "", /Grpc-Status/i);
      });

      it("a gRPC call gets none, with or without the fast path", async () => {
        const reply = await h2Request(
          server.url,
          { ":path": "/RouteGuide/GetPerson", "content-type": "application/grpc", te: "trailers" },
          envelope(0, nameBytes("Alice")),
        );
        assert.equal(reply.trailers["grpc-status"], "0");
        assert.equal(reply.headers["access-control-allow-origin"], undefined);
        assert.equal(reply.headers["access-control-expose-headers"], undefined);
      });
    });

    describe("over HTTP/2", () => {
      it("a successful GET is public for 60 seconds, a NOT_FOUND is not stored", async () => {
        const session = http2.connect(server.url);
        try {
          const head = (name: string) =>
            new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
              const url = new URL(getUrl(server.url, name));
              const stream = session.request({ ":method": "GET", ":path": url.pathname + url.search });
              stream.on("response", resolve).on("error", reject).resume();
            });
          const ok = await head("Alice");
          assert.equal(ok[":status"], 200);
          assert.equal(ok["cache-control"], "public, max-age=60");
          assert.equal(ok.vary, "Accept-Encoding");
          const missing = await head("Charlie");
          assert.equal(missing[":status"], 404);
          assert.equal(missing["cache-control"], "no-store");
        } finally {
          session.close();
        }
      });
    });
  });
}
