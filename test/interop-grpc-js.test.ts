// Interop with @grpc/grpc-js, the reference gRPC implementation for Node:
// its client against our server, and our client against a grpc-js server.
// Deadlines and cancellation are also checked with raw node:http2 requests,
// because grpc-js enforces deadlines on its own side of the wire.
import assert from "node:assert/strict";
import { once } from "node:events";
import http2 from "node:http2";
import { after, before, describe, test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { type Person as PersonMessage, PersonSchema, Person_Gender } from "../gen/person_pb.js";
import { NameSchema } from "../gen/route_guide_pb.js";
import { type Name, type Person, loadRouteGuide, startGrpcJsServer } from "../peers/grpc-js-server.js";
import { createRouteGuideClient } from "../src/client/client.js";
import type { RunningServer } from "../src/server.js";
import { startTestServer } from "./support/server.js";

// As grpc-js's proto-loader decodes it (keepCase, enums as numbers, defaults).
const ALICE: Person = {
  name: "Alice",
  age: 30,
  gender: 2,
  hobbies: ["reading", "swimming"],
  address: { street: "123 Main St", city: "New York" },
};

type RouteGuideClient = grpc.Client & {
  GetPerson(name: Name, callback: grpc.requestCallback<Person>): grpc.ClientUnaryCall;
  GetPeople(options?: grpc.CallOptions): grpc.ClientDuplexStream<Name, Person>;
};

const RouteGuide = loadRouteGuide();

function connect(port: number, options?: grpc.ChannelOptions): RouteGuideClient {
  return new RouteGuide(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), options) as unknown as RouteGuideClient;
}

function getPerson(client: RouteGuideClient, name: string): Promise<Person> {
  return new Promise((resolve, reject) =>
    client.GetPerson({ name }, (err, person) => (err ? reject(err) : resolve(person!))),
  );
}

/** The call's final status; grpc-js also emits non-OK statuses as "error", which this absorbs. */
function statusOf(call: grpc.ClientDuplexStream<Name, Person>): Promise<grpc.StatusObject> {
  call.on("error", () => {});
  return new Promise((resolve) => call.on("status", resolve));
}

/** A gRPC length-prefixed message: uncompressed flag, big-endian length, protobuf bytes. */
function envelope(name: string): Buffer {
  const bytes = toBinary(NameSchema, create(NameSchema, { name }));
  const frame = Buffer.alloc(5 + bytes.length);
  frame.writeUInt32BE(bytes.length, 1);
  frame.set(bytes, 5);
  return frame;
}

interface RawCall {
  stream: http2.ClientHttp2Stream;
  /** Resolves with the first response message. */
  firstReply: Promise<PersonMessage>;
  /** Resolves with the response headers merged with the trailers, once the response has ended. */
  finished(): Promise<http2.IncomingHttpHeaders>;
}

/** Opens a raw gRPC call on `session`, sends `names` as messages and leaves the request stream open. */
function rawCall(session: http2.ClientHttp2Session, path: string, names: string[], headers = {}): RawCall {
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...headers,
  });
  let received = Buffer.alloc(0);
  const firstReply = new Promise<PersonMessage>((resolve) => {
    stream.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      const end = received.length >= 5 ? 5 + received.readUInt32BE(1) : Infinity;
      if (received.length >= end) resolve(fromBinary(PersonSchema, received.subarray(5, end)));
    });
  });
  let response: http2.IncomingHttpHeaders = {};
  // A trailers-only response carries grpc-status in the headers and has no trailers frame.
  let trailers: http2.IncomingHttpHeaders = {};
  stream.once("response", (h) => (response = h));
  stream.once("trailers", (t) => (trailers = t));
  // "end", not "close": the stream only closes once our request side ends too.
  const finished = async () => {
    await once(stream, "end");
    return { ...response, ...trailers };
  };
  for (const name of names) stream.write(envelope(name));
  return { stream, firstReply, finished };
}

// Bounds a server that never answers; nothing here asserts on time.
describe("@grpc/grpc-js client against our server", { timeout: 60_000 }, () => {
  let server: RunningServer;
  let client: RouteGuideClient;

  before(async () => {
    server = await startTestServer();
    client = connect(server.port);
  });

  after(async () => {
    client?.close();
    await server?.close();
  });

  test("GetPerson returns every field of Alice", async () => {
    assert.deepEqual(await getPerson(client, "Alice"), ALICE);
  });

  test("GetPerson of an unknown name fails with NOT_FOUND", async () => {
    await assert.rejects(getPerson(client, "Nobody"), { code: grpc.status.NOT_FOUND });
  });

  test("GetPeople answers 10,000 streamed names in order, skipping unknown ones", async () => {
    // grpc-js copies its whole retry buffer for every message on a long client
    // stream (minutes for 100k messages); a small buffer turns retries off early.
    const streaming = connect(server.port, { "grpc.per_rpc_retry_buffer_size": 1024 });
    try {
      const call = streaming.GetPeople();
      const replies: string[] = [];
      call.on("data", (person: Person) => replies.push(person.name));
      const status = statusOf(call);
      const sent = Array.from({ length: 10_000 }, (_, i) => ["Alice", "Bob", "Charlie"][i % 3]!);
      for (const name of sent) {
        if (!call.write({ name })) await once(call, "drain");
      }
      call.end();
      assert.equal((await status).code, grpc.status.OK);
      assert.equal(replies.length, 6_667);
      assert.deepEqual(
        replies,
        sent.filter((name) => name !== "Charlie"),
      );
    } finally {
      streaming.close();
    }
  });

  test("a GetPeople call left open past its deadline ends with DEADLINE_EXCEEDED", async () => {
    const call = client.GetPeople({ deadline: Date.now() + 200 });
    const status = statusOf(call);
    const first = once(call, "data");
    call.write({ name: "Alice" });
    assert.deepEqual((await first)[0], ALICE);
    assert.equal((await status).code, grpc.status.DEADLINE_EXCEEDED);
  });

  test("the server itself ends a GetPeople call at its grpc-timeout with status 4", { timeout: 10_000 }, async () => {
    // grpc-js would end the call above on its own; a raw request leaves it to the server.
    const session = http2.connect(server.url);
    try {
      const call = rawCall(session, "/RouteGuide/GetPeople", ["Alice"], { "grpc-timeout": "200m" });
      assert.equal((await call.firstReply).name, "Alice");
      const headers = await call.finished();
      assert.equal(headers[":status"], 200);
      assert.equal(headers["grpc-status"], "4");
    } finally {
      // Our request side is still open, so a graceful close would wait for it.
      session.destroy();
    }
  });

  test("a cancelled GetPeople call leaves the connection usable", async () => {
    const call = client.GetPeople();
    const status = statusOf(call);
    const first = once(call, "data");
    call.write({ name: "Alice" });
    await first;
    call.cancel();
    assert.equal((await status).code, grpc.status.CANCELLED);
    assert.deepEqual(await getPerson(client, "Alice"), ALICE);
  });

  test("a GetPeople stream reset by the client closes with CANCEL and the session serves the next call", { timeout: 10_000 }, async () => {
    const session = http2.connect(server.url);
    try {
      const cancelled = rawCall(session, "/RouteGuide/GetPeople", ["Alice"]);
      assert.equal((await cancelled.firstReply).name, "Alice");
      cancelled.stream.close(http2.constants.NGHTTP2_CANCEL);
      await once(cancelled.stream, "close");
      assert.equal(cancelled.stream.rstCode, http2.constants.NGHTTP2_CANCEL);

      const next = rawCall(session, "/RouteGuide/GetPerson", ["Bob"]);
      next.stream.end();
      assert.equal((await next.firstReply).name, "Bob");
      assert.equal((await next.finished())["grpc-status"], "0");
      assert.equal(session.destroyed, false);
    } finally {
      session.close();
    }
  });
});

describe("our client against a @grpc/grpc-js server", { timeout: 60_000 }, () => {
  let peer: Awaited<ReturnType<typeof startGrpcJsServer>>;

  before(async () => {
    peer = await startGrpcJsServer(0);
  });

  after(async () => {
    await peer?.close();
  });

  test("GetPerson over gRPC", async () => {
    const client = createRouteGuideClient({ baseUrl: `http://127.0.0.1:${peer.port}`, protocol: "grpc" });
    assert.deepEqual(
      await client.getPerson({ name: "Alice" }),
      create(PersonSchema, {
        name: "Alice",
        age: 30,
        gender: Person_Gender.FEMALE,
        hobbies: ["reading", "swimming"],
        address: { street: "123 Main St", city: "New York" },
      }),
    );
    // The tutorial's behaviour, kept by the peer: a placeholder instead of an error.
    assert.equal((await client.getPerson({ name: "Charlie" })).name, "Not Found");
  });

  test("GetPeople over gRPC answers known names in order and skips unknown ones", async () => {
    const client = createRouteGuideClient({ baseUrl: `http://127.0.0.1:${peer.port}`, protocol: "grpc" });
    const names = (async function* () {
      yield* [{ name: "Alice" }, { name: "Charlie" }, { name: "Bob" }, { name: "Alice" }];
    })();
    const people: string[] = [];
    for await (const person of client.getPeople(names)) people.push(person.name);
    assert.deepEqual(people, ["Alice", "Bob", "Alice"]);
  });
});
