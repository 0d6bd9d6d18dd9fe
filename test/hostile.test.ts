import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { codeFromString } from "@connectrpc/connect/protocol-connect";
import * as grpc from "@grpc/grpc-js";
import { createRouteGuideClient, protocols } from "../src/client/client.js";
import { defaultLimits } from "../src/transport/limits.js";
import { startTestServer, type RunningServer } from "./support/server.js";
import { connectEndStream, envelope, grpcStatus, grpcWebStatus, h1Raw, h2Request, nameBytes, type H2Reply } from "./support/raw.js";

// Malformed requests, one layer at a time, over raw HTTP/2 (node:http2 writing
// exactly these bytes) and raw HTTP/1.1 (a TCP socket). Each must get the
// protocol's own error, and the server must go on serving.

let server: RunningServer;
before(async () => (server = await startTestServer()));
after(() => server.close());

const getPerson = "/RouteGuide/GetPerson";
const getPeople = "/RouteGuide/GetPeople";
const alice = nameBytes("Alice");
/** Says the name is 16 bytes long, then ends after one. */
const invalidProto = Buffer.from([0x0a, 0x10, 0x41]);
const invalidJson = Buffer.from('{"name": "Al');

type Answer = { http: number } | { code: Code };

/** The three enveloped protocols, as a raw client would speak them over HTTP/2. */
const enveloped = [
  {
    label: "gRPC",
    headers: { "content-type": "application/grpc", te: "trailers" },
    json: "application/grpc+json",
    encodingHeader: "grpc-encoding",
    acceptHeader: "grpc-accept-encoding",
    endFlag: 0x02,
    code: (r: H2Reply) => grpcStatus(r),
  },
  {
    label: "gRPC-Web",
    headers: { "content-type": "application/grpc-web+proto" },
    json: "application/grpc-web+json",
    encodingHeader: "grpc-encoding",
    acceptHeader: "grpc-accept-encoding",
    endFlag: 0x80, // gRPC-Web's trailer frame
    code: (r: H2Reply) => grpcWebStatus(r),
  },
  {
    label: "Connect streaming",
    headers: { "content-type": "application/connect+proto" },
    json: "application/connect+json",
    encodingHeader: "connect-content-encoding",
    acceptHeader: "connect-accept-encoding",
    endFlag: 0x02,
    code: (r: H2Reply) => {
      const end = connectEndStream(r.body);
      return end === undefined ? undefined : end.error ? codeFromString(end.error.code) : 0;
    },
  },
] as const;

for (const p of enveloped) {
  // Connect streaming framing is only used by streaming methods.
  const path = p.label === "Connect streaming" ? getPeople : getPerson;
  const framingErrorCode = p.label === "Connect streaming" ? Code.InvalidArgument : Code.Internal;
  const cases: Array<[string, Record<string, string>, Buffer[], Answer]> = [
    ["a truncated envelope", {}, [envelope(0, alice, 100)], { code: Code.InvalidArgument }],
    ["only part of an envelope header", {}, [Buffer.from([0, 0, 0])], { code: Code.InvalidArgument }],
    ["a compressed flag without an encoding", {}, [envelope(1, gzipSync(alice))], { code: Code.Internal }],
    ["an unknown encoding", { [p.encodingHeader]: "snappy" }, [envelope(1, alice)], { code: Code.Unimplemented }],
    ["gzip that is not gzip", { [p.encodingHeader]: "gzip" }, [envelope(1, Buffer.from("not gzip"))], { code: Code.InvalidArgument }],
    ["invalid protobuf bytes", {}, [envelope(0, invalidProto)], { code: Code.Internal }],
    ["invalid JSON", { "content-type": p.json }, [envelope(0, invalidJson)], { code: Code.InvalidArgument }],
    ["an end-of-stream flag on a request", {}, [envelope(p.endFlag, alice)], { code: framingErrorCode }],
    ["a reserved envelope flag", {}, [envelope(0x04, alice)], { code: framingErrorCode }],
    ["a good message after an end-of-stream flag", {}, [envelope(p.endFlag, alice), envelope(0, alice)], { code: framingErrorCode }],
    ["a malformed timeout", { [p.label === "Connect streaming" ? "connect-timeout-ms" : "grpc-timeout"]: "soon" }, [envelope(0, alice)], { code: Code.InvalidArgument }],
    ["the wrong content type", { "content-type": "text/plain" }, [envelope(0, alice)], { http: 415 }],
    ["the wrong HTTP method", { ":method": "PUT" }, [envelope(0, alice)], { http: 405 }],
    ["an unknown path", { ":path": "/RouteGuide/GetPlanet" }, [envelope(0, alice)], { http: 404 }],
  ];
  describe(`${p.label} over HTTP/2 rejects`, () => {
    for (const [what, headers, body, answer] of cases) {
      it(what, async () => {
        const reply = await h2Request(server.url, { ":path": path, ...p.headers, ...headers }, body);
        if ("http" in answer) {
          assert.equal(reply.status, answer.http);
        } else {
          assert.equal(reply.status, 200, "enveloped protocols carry errors in a 200 reply");
          assert.equal(p.code(reply), answer.code, `got ${reply.body.toString("latin1")} ${JSON.stringify(reply.trailers)}`);
        }
      });
    }
    it("an unknown encoding, naming the ones it accepts", async () => {
      const reply = await h2Request(server.url, { ":path": path, ...p.headers, [p.encodingHeader]: "snappy" }, [envelope(1, alice)]);
      assert.equal(p.code(reply), Code.Unimplemented);
      assert.equal(reply.headers[p.acceptHeader], "gzip,br");
    });
  });
}

describe("Connect unary over HTTP/2 rejects", () => {
  const proto = { ":path": getPerson, "content-type": "application/proto" };
  const cases: Array<[string, Record<string, string>, Buffer[], number, string | undefined]> = [
    ["invalid JSON", { "content-type": "application/json" }, [invalidJson], 400, "invalid_argument"],
    // connect-node's class for undecodable binary on every protocol (gRPC's table says INTERNAL too).
    ["invalid protobuf bytes", {}, [invalidProto], 500, "internal"],
    ["an unknown encoding", { "content-encoding": "snappy" }, [Buffer.from(alice)], 501, "unimplemented"],
    ["gzip that is not gzip", { "content-encoding": "gzip" }, [Buffer.from("not gzip")], 400, "invalid_argument"],
    ["a malformed timeout", { "connect-timeout-ms": "-1" }, [Buffer.from(alice)], 400, "invalid_argument"],
    ["the wrong content type", { "content-type": "text/plain" }, [Buffer.from(alice)], 415, undefined],
    ["the wrong HTTP method", { ":method": "PUT" }, [Buffer.from(alice)], 405, undefined],
    ["an unknown path", { ":path": "/RouteGuide/GetPlanet" }, [Buffer.from(alice)], 404, undefined],
    ["a GET whose message is not base64", { ":method": "GET", ":path": `${getPerson}?encoding=proto&base64=1&message=%25%25` }, [], 400, "invalid_argument"],
    ["a GET with an unknown compression", { ":method": "GET", ":path": `${getPerson}?encoding=json&compression=snappy&message=%7B%7D` }, [], 501, "unimplemented"],
    ["a GET without an encoding", { ":method": "GET", ":path": `${getPerson}?message=%7B%7D` }, [], 415, undefined],
    ["a GET of a streaming method", { ":method": "GET", ":path": `${getPeople}?encoding=json&message=%7B%7D` }, [], 405, undefined],
  ];
  for (const [what, headers, body, status, code] of cases) {
    it(what, async () => {
      const reply = await h2Request(server.url, { ...proto, ...headers }, body);
      assert.equal(reply.status, status);
      if (code) assert.equal(JSON.parse(reply.body.toString()).code, code);
    });
  }
  it("an unknown encoding, naming the ones it accepts", async () => {
    const reply = await h2Request(server.url, { ...proto, "content-encoding": "snappy" }, [Buffer.from(alice)]);
    assert.equal(reply.status, 501);
    assert.equal(reply.headers["accept-encoding"], "gzip,br");
  });
});

/** One HTTP/1.1 request with a content-length, as bytes on a fresh connection. */
function h1Post(path: string, headers: Record<string, string>, body: Uint8Array, method = "POST") {
  const head = [`${method} ${path} HTTP/1.1`, "Host: 127.0.0.1", `Content-Length: ${body.length}`, "Connection: close"];
  for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
  return h1Raw(server.port, Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`), body]));
}

describe("gRPC-Web over HTTP/1.1 rejects", () => {
  const grpcWeb = { "Content-Type": "application/grpc-web+proto" };
  const cases: Array<[string, Record<string, string>, Buffer, Answer]> = [
    ["a truncated envelope", {}, envelope(0, alice, 100), { code: Code.InvalidArgument }],
    ["a compressed flag without an encoding", {}, envelope(1, gzipSync(alice)), { code: Code.Internal }],
    ["an unknown encoding", { "Grpc-Encoding": "snappy" }, envelope(1, alice), { code: Code.Unimplemented }],
    ["invalid protobuf bytes", {}, envelope(0, invalidProto), { code: Code.Internal }],
    ["invalid JSON", { "Content-Type": "application/grpc-web+json" }, envelope(0, invalidJson), { code: Code.InvalidArgument }],
    ["a trailer frame on a request", {}, envelope(0x80, alice), { code: Code.Internal }],
    ["the wrong content type", { "Content-Type": "text/plain" }, envelope(0, alice), { http: 415 }],
    ["an unknown path", {}, envelope(0, alice), { http: 404 }],
  ];
  for (const [what, headers, body, answer] of cases) {
    it(what, async () => {
      const path = what === "an unknown path" ? "/RouteGuide/GetPlanet" : getPerson;
      const reply = await h1Post(path, { ...grpcWeb, ...headers }, body);
      if ("http" in answer) assert.equal(reply.status, answer.http);
      else {
        assert.equal(reply.status, 200);
        assert.equal(grpcWebStatus(reply), answer.code);
      }
    });
  }
  it("the wrong HTTP method", async () => {
    assert.equal((await h1Post(getPerson, grpcWeb, envelope(0, alice), "PUT")).status, 405);
  });
});

describe("Connect unary over HTTP/1.1 rejects", () => {
  const cases: Array<[string, Record<string, string>, Uint8Array, number, string | undefined]> = [
    ["invalid JSON", { "Content-Type": "application/json" }, invalidJson, 400, "invalid_argument"],
    ["invalid protobuf bytes", { "Content-Type": "application/proto" }, invalidProto, 500, "internal"],
    ["an unknown encoding", { "Content-Type": "application/proto", "Content-Encoding": "snappy" }, alice, 501, "unimplemented"],
    ["the wrong content type", { "Content-Type": "text/plain" }, alice, 415, undefined],
  ];
  for (const [what, headers, body, status, code] of cases) {
    it(what, async () => {
      const reply = await h1Post(getPerson, headers, body);
      assert.equal(reply.status, status);
      if (code) assert.equal(JSON.parse(reply.body.toString()).code, code);
    });
  }
  it("the wrong HTTP method", async () => {
    assert.equal((await h1Post(getPerson, { "Content-Type": "application/json" }, Buffer.from("{}"), "PUT")).status, 405);
  });
  it("a GET whose message is not base64", async () => {
    const reply = await h1Raw(server.port, `GET ${getPerson}?encoding=proto&base64=1&message=%25%25 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.equal(reply.status, 400);
    assert.equal(JSON.parse(reply.body.toString()).code, "invalid_argument");
  });
});

describe("malformed HTTP/1.x", () => {
  for (const [protocol, contentType, body] of [
    ["Connect", "application/json", Buffer.from('{"name":"Bob"}')],
    ["gRPC-Web", "application/grpc-web+proto", envelope(0, nameBytes("Bob"))],
  ] as const) {
    it(`answers a ${protocol} HTTP/1.0 request without Host with 400 instead of crashing`, async () => {
      // connect-node throws from the request listener here, which would end the process.
      const head = `POST ${getPerson} HTTP/1.0\r\nContent-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`;
      const reply = await h1Raw(server.port, Buffer.concat([Buffer.from(head), body]));
      assert.equal(reply.status, 400);
      assert.match(JSON.parse(reply.body.toString()).message, /Host/);
    });
  }

  for (const version of ["1.0", "1.1"]) {
    it(`answers gRPC over HTTP/${version} with 505: gRPC requires HTTP/2`, async () => {
      const body = envelope(0, nameBytes("Bob"));
      const head = `POST ${getPerson} HTTP/${version}\r\nHost: x\r\nContent-Type: application/grpc\r\nContent-Length: ${body.length}\r\n\r\n`;
      const reply = await h1Raw(server.port, Buffer.concat([Buffer.from(head), body]));
      assert.equal(reply.status, 505);
      assert.equal(JSON.parse(reply.body.toString()).code, "unimplemented");
    });
  }

  it("answers an HTTP/1.1 request without Host with 400", async () => {
    const reply = await h1Raw(server.port, `POST ${getPerson} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
    assert.equal(reply.status, 400);
  });

  it("answers a request line that is not HTTP with 400", async () => {
    const reply = await h1Raw(server.port, "HELLO THERE\r\n\r\n");
    assert.equal(reply.status, 400);
  });

  it("answers conflicting Content-Length and Transfer-Encoding with 400 (request smuggling)", async () => {
    const reply = await h1Raw(
      server.port,
      `POST ${getPerson} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n`,
    );
    assert.equal(reply.status, 400);
  });
});

describe("input echoed in errors", () => {
  it("a 100 KB name still gets its status over gRPC (the status must fit in the trailers)", async () => {
    const reply = await h2Request(server.url, { ":path": getPerson, "content-type": "application/grpc", te: "trailers" }, [
      envelope(0, nameBytes("x".repeat(100_000))),
    ]);
    // Name's buf.validate rule (at most 100 characters) refuses it before the service could echo it.
    assert.equal(grpcStatus(reply), Code.InvalidArgument);
  });
});

describe("gRPC clients", () => {
  it("read an unknown method's 404 as UNIMPLEMENTED", async () => {
    const client = new grpc.Client(`127.0.0.1:${server.port}`, grpc.credentials.createInsecure());
    try {
      const code = await new Promise<number>((resolve) => {
        client.makeUnaryRequest("/RouteGuide/GetPlanet", (b: Buffer) => b, (b: Buffer) => b, Buffer.from(alice), (err) =>
          resolve(err?.code ?? 0),
        );
      });
      assert.equal(code, grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });
});

describe("after all of that", () => {
  for (const protocol of protocols) {
    it(`still answers ${protocol} calls`, async () => {
      const bob = await createRouteGuideClient({ baseUrl: server.url, protocol }).getPerson({ name: "Bob" });
      assert.equal(bob.address?.city, "Los Angeles");
    });
  }
});

// A call refused while its body is still arriving leaves the rest unread: the connection must still carry the next request.
for (const fastPath of [true, false]) {
  describe(`an HTTP/1.1 body refused half-way (engine ${fastPath ? "on" : "off"})`, () => {
    let small: RunningServer;
    before(async () => (small = await startTestServer({ fastPath, limits: { ...defaultLimits(), maxMessageBytes: 1024 } })));
    after(() => small.close());

    it("is discarded, and the same connection answers the next request", async () => {
      const socket = net.connect(small.port, "127.0.0.1");
      await once(socket, "connect");
      let received = "";
      socket.setEncoding("latin1");
      socket.on("data", (chunk: string) => (received += chunk));
      const until = async (pattern: RegExp) => {
        for (let i = 0; i < 100 && !pattern.test(received); i++) await new Promise((r) => setTimeout(r, 20));
        assert.match(received, pattern);
      };
      const chunk = `{"name":"${"y".repeat(3000)}`;
      socket.write(
        "POST /RouteGuide/GetPerson HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n" +
          `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
      );
      await until(/^HTTP\/1\.1 429 /);
      socket.write(`2\r\n"}\r\n0\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
      await until(/HTTP\/1\.1 200 [^]*SERVING/);
      socket.destroy();
    });
  });
}
