import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestServer, type RunningServer } from "./support/server.js";

let server: RunningServer;
before(async () => (server = await startTestServer()));
after(() => server.close());

/** Sends raw bytes in pieces and returns everything the server wrote until it closed or `until` matched. */
async function exchange(pieces: Buffer[], until: RegExp): Promise<Buffer> {
  const socket = net.connect(server.port, "127.0.0.1");
  await new Promise((r) => socket.once("connect", r));
  const received: Buffer[] = [];
  const done = new Promise<void>((resolve) => {
    socket.on("data", (chunk) => {
      received.push(chunk);
      if (until.test(Buffer.concat(received).toString("latin1"))) resolve();
    });
    socket.on("close", () => resolve());
  });
  for (const piece of pieces) {
    socket.write(piece);
    await sleep(20); // separate TCP segments: the listener must not decide on a partial preface
  }
  await done;
  socket.destroy();
  return Buffer.concat(received);
}

describe("one plain-text port", () => {
  it("routes HTTP/1.1 whose first bytes arrive one at a time", async () => {
    const request = Buffer.from("GET /RouteGuide/GetPerson?encoding=json&message=%7B%22name%22%3A%22Bob%22%7D HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    const pieces = [...request.subarray(0, 6)].map((b) => Buffer.from([b])).concat(request.subarray(6));
    const reply = (await exchange(pieces, /Los Angeles/)).toString();
    assert.match(reply, /^HTTP\/1\.1 200 OK/);
    assert.match(reply, /"city":"Los Angeles"/);
  });

  it("routes an HTTP/2 preface split across segments to the HTTP/2 server", async () => {
    const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]); // empty SETTINGS frame
    const reply = await exchange([preface.subarray(0, 3), preface.subarray(3, 20), preface.subarray(20), settings], /[\s\S]{9}/);
    // The server's first frame is its SETTINGS frame: type 4 on stream 0.
    assert.equal(reply[3], 4);
    assert.equal(reply.readUInt32BE(5), 0);
  });

  it("answers a request that only starts like the preface as HTTP/1.1", async () => {
    const reply = (await exchange([Buffer.from("PRI * HTTP/1.1\r\nHost: x\r\n\r\n")], /\r\n\r\n/)).toString();
    assert.match(reply, /^HTTP\/1\.1 4\d\d /);
  });
});
