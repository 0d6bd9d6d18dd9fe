import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { NameSchema, type Name } from "../gen/route_guide_pb.js";
import { createRouteGuideClient, type ClientOptions } from "../src/client/client.js";
import { startTestServer, type RunningServer } from "./support/server.js";

let server: RunningServer;
before(async () => (server = await startTestServer()));
after(() => server.close());

// Every combination a client can use: gRPC is HTTP/2 only; Connect and gRPC-Web work over both.
const variants: Array<Omit<ClientOptions, "baseUrl">> = [];
for (const json of [false, true]) {
  variants.push({ protocol: "grpc", json, httpVersion: "2" });
  for (const protocol of ["grpc-web", "connect"] as const) {
    for (const httpVersion of ["1.1", "2"] as const) variants.push({ protocol, json, httpVersion });
  }
}
const label = (v: Omit<ClientOptions, "baseUrl">) => `${v.protocol} ${v.json ? "JSON" : "binary"} HTTP/${v.httpVersion}`;

async function* names(...list: string[]): AsyncIterable<Name> {
  for (const name of list) yield create(NameSchema, { name });
}

for (const variant of variants) {
  describe(label(variant), () => {
    const client = () => createRouteGuideClient({ baseUrl: server.url, ...variant });

    it("GetPerson returns Alice", async () => {
      const alice = await client().getPerson({ name: "Alice" });
      assert.equal(alice.age, 30);
      assert.deepEqual(alice.hobbies, ["reading", "swimming"]);
      assert.equal(alice.address?.city, "New York");
    });

    it("GetPerson reports NOT_FOUND for Charlie", async () => {
      await assert.rejects(client().getPerson({ name: "Charlie" }), (err: ConnectError) => {
        assert.equal(err.code, Code.NotFound);
        assert.equal(err.rawMessage, 'no person named "Charlie"');
        return true;
      });
    });

    if (variant.httpVersion === "2") {
      it("GetPeople streams Alice and Bob, skipping Charlie", async () => {
        const got: string[] = [];
        for await (const p of client().getPeople(names("Alice", "Bob", "Charlie"))) got.push(p.name);
        assert.deepEqual(got, ["Alice", "Bob"]);
      });
    } else {
      it("GetPeople fails with a clear error instead of hanging", async () => {
        await assert.rejects(async () => {
          for await (const _ of client().getPeople(names("Alice"))) void _;
        }, ConnectError);
      });
    }
  });
}

/** A request stream the test feeds one name at a time. */
function pushable() {
  const queue: Name[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  return {
    push(name: string) {
      queue.push(create(NameSchema, { name }));
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator](): AsyncGenerator<Name> {
      for (;;) {
        if (queue.length > 0) yield queue.shift()!;
        else if (ended) return;
        else await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

describe("GetPeople is a true bidirectional stream", () => {
  for (const protocol of ["grpc", "connect"] as const) {
    it(`${protocol}: replies to each name before the next one is sent`, async () => {
      const client = createRouteGuideClient({ baseUrl: server.url, protocol });
      const requests = pushable();
      const replies = client.getPeople(requests)[Symbol.asyncIterator]();
      requests.push("Alice");
      // Only Alice has been sent and the stream is still open: her reply must already come.
      assert.equal((await replies.next()).value?.name, "Alice");
      requests.push("Charlie");
      requests.push("Bob");
      assert.equal((await replies.next()).value?.name, "Bob");
      requests.end();
      assert.equal((await replies.next()).done, true);
    });
  }

  it("ends with DEADLINE_EXCEEDED when the deadline passes on an open stream", async () => {
    const client = createRouteGuideClient({ baseUrl: server.url, protocol: "grpc" });
    const requests = pushable();
    requests.push("Alice");
    const got: string[] = [];
    await assert.rejects(async () => {
      for await (const p of client.getPeople(requests, { timeoutMs: 300 })) got.push(p.name);
    }, { code: Code.DeadlineExceeded });
    assert.deepEqual(got, ["Alice"]);
  });
});
