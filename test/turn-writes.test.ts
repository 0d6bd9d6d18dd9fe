import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { endAtTurnEnd } from "../src/engine/turn-writes.js";

// The engine's HTTP/1.1 replies are ended at the end of the event loop's
// turn (src/engine/turn-writes.ts). Over real sockets: a held reply is not
// ended before the turn is over and arrives whole after it; pipelined replies
// keep their order; a reply whose client went away, or that was ended
// otherwise in the meantime, is dropped without an error reaching the process.

type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse) => void;

describe("HTTP/1.1 replies ended at the turn's end", () => {
  let server: http.Server;
  let port: number;
  const behaviours = new Map<string, Behaviour>();
  const endedInTurn: boolean[] = [];

  before(async () => {
    server = http.createServer((req, res) => behaviours.get(req.url ?? "")!(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as AddressInfo).port;
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const reply = (res: http.ServerResponse, body: string) => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": Buffer.byteLength(body) });
    endAtTurnEnd(res, body);
    endedInTurn.push(res.writableEnded);
  };
  behaviours.set("/held", (req, res) => reply(res, `held ${req.headers["x-n"] ?? ""}`));
  behaviours.set("/gone", (_req, res) => {
    reply(res, "never sent");
    res.destroy();
  });
  // Large enough that its write is still going on at the turn's end, so the response is not yet destroyed.
  const large = "x".repeat(16 * 1024 * 1024);
  behaviours.set("/ended-meanwhile", (_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    endAtTurnEnd(res, "held");
    res.end(large);
  });

  const get = (path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      http
        .get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
          let body = "";
          res.setEncoding("utf8").on("data", (c: string) => (body += c));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        })
        .on("error", reject);
    });

  it("ends a reply after the turn in which it was given, not during it", async () => {
    endedInTurn.length = 0;
    assert.deepEqual(await get("/held"), { status: 200, body: "held " });
    assert.deepEqual(endedInTurn, [false]);
  });

  it("keeps the order of pipelined replies on one connection", async () => {
    const socket = net.connect(port, "127.0.0.1");
    const requests = [1, 2, 3].map((n) => `GET /held HTTP/1.1\r\nhost: x\r\nx-n: ${n}\r\n\r\n`).join("");
    socket.end(requests);
    let text = "";
    socket.setEncoding("latin1").on("data", (c: string) => (text += c));
    await new Promise((resolve) => socket.on("close", resolve));
    const bodies = text.split("\r\n\r\n").slice(1).map((part) => part.slice(0, 6));
    assert.deepEqual(bodies, ["held 1", "held 2", "held 3"]);
  });

  it("drops a reply whose client went away, and the server goes on", async () => {
    await assert.rejects(get("/gone"), /socket hang up|ECONNRESET/);
    assert.deepEqual(await get("/held"), { status: 200, body: "held " });
  });

  it("drops a held reply that was ended otherwise in the meantime", async () => {
    const errors: Error[] = [];
    const onError = (e: Error) => errors.push(e);
    process.on("uncaughtException", onError);
    try {
      assert.deepEqual(await get("/ended-meanwhile"), { status: 200, body: large });
      await new Promise((resolve) => setImmediate(resolve));
      assert.deepEqual(await get("/held"), { status: 200, body: "held " });
    } finally {
      process.off("uncaughtException", onError);
    }
    assert.deepEqual(errors, []);
  });
});
