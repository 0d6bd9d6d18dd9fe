import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { startTestServer, type RunningServer } from "./support/server.js";

const run = promisify(execFile);
let server: RunningServer;
before(async () => (server = await startTestServer()));
after(() => server.close());

interface CurlResult {
  status: number;
  httpVersion: string;
  headers: Record<string, string>;
  body: string;
}

/** curl as a user types it; -i gives the status line and headers to check. */
async function curl(...args: string[]): Promise<CurlResult> {
  const { stdout } = await run("curl", ["-sS", "-i", "--max-time", "10", ...args]);
  const [head, ...rest] = stdout.split("\r\n\r\n");
  const [statusLine, ...headerLines] = head!.split("\r\n");
  const [, httpVersion, status] = /^HTTP\/([\d.]+) (\d+)/.exec(statusLine!)!;
  const headers: Record<string, string> = {};
  for (const line of headerLines) {
    const i = line.indexOf(":");
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return { status: Number(status), httpVersion: httpVersion!, headers, body: rest.join("\r\n\r\n") };
}

const alice = { name: "Alice", age: 30, gender: "FEMALE", hobbies: ["reading", "swimming"], address: { street: "123 Main St", city: "New York" } };
const getUrl = (name: string) =>
  `${server.url}/RouteGuide/GetPerson?encoding=json&message=${encodeURIComponent(JSON.stringify({ name }))}`;

for (const [label, flags, version] of [
  ["HTTP/1.1", [], "1.1"],
  ["h2c (--http2-prior-knowledge)", ["--http2-prior-knowledge"], "2"],
] as const) {
  describe(`curl with Connect JSON over ${label}`, () => {
    it("POST GetPerson returns Alice as JSON", async () => {
      const res = await curl(...flags, "-H", "content-type: application/json", "-d", '{"name":"Alice"}', `${server.url}/RouteGuide/GetPerson`);
      assert.equal(res.httpVersion, version);
      assert.equal(res.status, 200);
      assert.match(res.headers["content-type"]!, /^application\/json/);
      assert.deepEqual(JSON.parse(res.body), alice);
    });

    it("GET GetPerson works as a plain URL", async () => {
      const res = await curl(...flags, getUrl("Bob"));
      assert.equal(res.status, 200);
      assert.equal(JSON.parse(res.body).address.city, "Los Angeles");
    });

    it("an unknown name is HTTP 404 with the Connect error body", async () => {
      const res = await curl(...flags, "-H", "content-type: application/json", "-d", '{"name":"Charlie"}', `${server.url}/RouteGuide/GetPerson`);
      assert.equal(res.status, 404);
      assert.deepEqual(JSON.parse(res.body), { code: "not_found", message: 'no person named "Charlie"' });
    });

    it("GET with an unknown name is HTTP 404 too", async () => {
      const res = await curl(...flags, getUrl("Charlie"));
      assert.equal(res.status, 404);
      assert.equal(JSON.parse(res.body).code, "not_found");
    });

    it("an empty name is HTTP 400 invalid_argument", async () => {
      const res = await curl(...flags, "-H", "content-type: application/json", "-d", "{}", `${server.url}/RouteGuide/GetPerson`);
      assert.equal(res.status, 400);
      assert.equal(JSON.parse(res.body).code, "invalid_argument");
    });
  });
}

describe("curl and the bidirectional stream", () => {
  it("over HTTP/1.1 gets 505 with a message that says HTTP/2 is needed", async () => {
    const res = await curl("-H", "content-type: application/connect+json", "--data-binary", "", `${server.url}/RouteGuide/GetPeople`);
    assert.equal(res.status, 505);
    const body = JSON.parse(res.body);
    assert.equal(body.code, "unimplemented");
    assert.match(body.message, /HTTP\/2/);
  });

  it("over h2c streams the people for enveloped Connect JSON names", async () => {
    const envelope = (name: string) => {
      const json = Buffer.from(JSON.stringify({ name }));
      const head = Buffer.alloc(5);
      head.writeUInt32BE(json.length, 1);
      return Buffer.concat([head, json]);
    };
    const body = Buffer.concat([envelope("Bob"), envelope("Charlie"), envelope("Alice")]);
    const { stdout } = await run("bash", ["-c", `printf '%s' "$0" | base64 -d | curl -sS --http2-prior-knowledge -H 'content-type: application/connect+json' --data-binary @- ${server.url}/RouteGuide/GetPeople`, body.toString("base64")], { encoding: "buffer" });
    // The response is enveloped too: two people, then the end-of-stream message.
    const messages: string[] = [];
    for (let i = 0; i < stdout.length; ) {
      const length = stdout.readUInt32BE(i + 1);
      messages.push(stdout.subarray(i + 5, i + 5 + length).toString());
      i += 5 + length;
    }
    assert.deepEqual(messages.slice(0, 2).map((m) => JSON.parse(m).name), ["Bob", "Alice"]);
    assert.deepEqual(JSON.parse(messages[2]!), {});
  });
});
