import assert from "node:assert/strict";
import http2 from "node:http2";
import https from "node:https";
import { after, before, describe, it } from "node:test";
import { startTestServer, type RunningServer } from "./support/server.js";
import { throwawayCertificate, type Certificate } from "./support/tls.js";

let certificate: Certificate;
let server: RunningServer;

before(async () => {
  certificate = await throwawayCertificate();
  server = await startTestServer({ tls: certificate });
});
after(async () => {
  await server.close();
  await certificate.remove();
});

const body = JSON.stringify({ name: "Alice" });

describe("TLS on one port", () => {
  it("serves HTTP/2 when ALPN picks h2", async () => {
    const session = http2.connect(server.url, { rejectUnauthorized: false });
    try {
      const req = session.request({ ":method": "POST", ":path": "/RouteGuide/GetPerson", "content-type": "application/json" });
      req.end(body);
      const [headers] = await Promise.all([new Promise<http2.IncomingHttpHeaders>((r) => req.once("response", r))]);
      let text = "";
      for await (const chunk of req) text += chunk;
      assert.equal(headers[":status"], 200);
      assert.equal(session.alpnProtocol, "h2");
      assert.equal(JSON.parse(text).name, "Alice");
    } finally {
      session.close();
    }
  });

  it("serves HTTP/1.1 when ALPN picks http/1.1", async () => {
    const res = await new Promise<import("node:http").IncomingMessage>((resolve, reject) => {
      const req = https.request(`${server.url}/RouteGuide/GetPerson`, {
        method: "POST",
        agent: new https.Agent({ rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }),
        headers: { "content-type": "application/json" },
      }, resolve);
      req.on("error", reject);
      req.end(body);
    });
    let text = "";
    for await (const chunk of res) text += chunk;
    assert.equal(res.statusCode, 200);
    assert.equal(res.httpVersion, "1.1");
    assert.equal(JSON.parse(text).age, 30);
  });
});
