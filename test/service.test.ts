import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Person_Gender } from "../gen/person_pb.js";
import { NameSchema, RouteGuide, type Name } from "../gen/route_guide_pb.js";
import { loadDirectory } from "../src/routeguide/directory.js";
import { HealthStatus } from "../src/grpc-services/health.js";
import { validationInterceptor } from "../src/http/validation.js";
import { routes } from "../src/routes.js";

// The router in memory, with the validation interceptor the server runs: the service's behaviour without sockets.
const client = createClient(
  RouteGuide,
  createRouterTransport(routes(await loadDirectory(), new HealthStatus()), { router: { interceptors: [validationInterceptor] } }),
);

async function* names(...list: string[]): AsyncIterable<Name> {
  for (const name of list) yield create(NameSchema, { name });
}

describe("GetPerson", () => {
  it("returns the tutorial's Alice with every field", async () => {
    const alice = await client.getPerson({ name: "Alice" });
    assert.equal(alice.name, "Alice");
    assert.equal(alice.age, 30);
    assert.equal(alice.gender, Person_Gender.FEMALE);
    assert.deepEqual(alice.hobbies, ["reading", "swimming"]);
    assert.equal(alice.address?.street, "123 Main St");
    assert.equal(alice.address?.city, "New York");
  });

  it("reports an unknown name as NOT_FOUND, naming it", async () => {
    await assert.rejects(client.getPerson({ name: "Charlie" }), (err: ConnectError) => {
      assert.equal(err.code, Code.NotFound);
      assert.match(err.rawMessage, /Charlie/);
      return true;
    });
  });

  it("rejects an empty name as INVALID_ARGUMENT", async () => {
    await assert.rejects(client.getPerson({ name: "" }), { code: Code.InvalidArgument });
  });
});

describe("GetPeople", () => {
  it("answers each known name in order and skips unknown ones", async () => {
    const got: string[] = [];
    for await (const p of client.getPeople(names("Alice", "Charlie", "Bob", "Alice"))) got.push(p.name);
    assert.deepEqual(got, ["Alice", "Bob", "Alice"]);
  });

  it("ends cleanly on an empty request stream", async () => {
    const got: string[] = [];
    for await (const p of client.getPeople(names())) got.push(p.name);
    assert.deepEqual(got, []);
  });

  it("rejects an empty name in the stream as INVALID_ARGUMENT", async () => {
    await assert.rejects(async () => {
      for await (const _ of client.getPeople(names("Alice", ""))) void _;
    }, { code: Code.InvalidArgument });
  });
});
