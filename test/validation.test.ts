// protovalidate's rules (buf.validate options in proto/*.proto) enforced by
// the server's interceptor, on every protocol and on each message of a
// stream: INVALID_ARGUMENT with a buf.validate.Violations detail.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { create, fromBinary } from "@bufbuild/protobuf";
import {
  type FieldPath,
  type Violations,
  ViolationsSchema,
} from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import { ExerciseService, type ExerciseRequest, ExerciseRequestSchema } from "../gen/exercise/v1/exercise_pb.js";
import { NameSchema, type Name } from "../gen/route_guide_pb.js";
import { createRouteGuideClient, protocols } from "../src/client/client.js";
import type { ExerciseInit } from "./support/exercise-requests.js";
import { exerciseRoutes } from "./support/exercise-service.js";
import { envelope, grpcStatus, h2Request, nameBytes } from "./support/raw.js";
import { type RunningServer, startTestServer } from "./support/server.js";

let server: RunningServer;
before(async () => (server = await startTestServer()));
after(() => server.close(0));

/** The violations a ConnectError carries, as [field path, rule id] pairs. */
function violationsOf(err: unknown): Array<[string, string]> {
  assert.ok(err instanceof ConnectError, String(err));
  assert.equal(err.code, Code.InvalidArgument);
  const [violations] = err.findDetails(ViolationsSchema);
  assert.ok(violations !== undefined, `no buf.validate.Violations detail on ${err.message}`);
  return pairs(violations);
}

function pairs(violations: Violations): Array<[string, string]> {
  return violations.violations.map((v) => [pathString(v.field), v.ruleId]);
}

/** A violation's field path as protovalidate writes it in its message: `a.b[0].c`, `m["key"]`. */
function pathString(path: FieldPath | undefined): string {
  return (path?.elements ?? [])
    .map((e, i) => {
      const name = (i === 0 ? "" : ".") + e.fieldName;
      const key = e.subscript;
      if (key.case === undefined) return name;
      return `${name}[${key.case === "stringKey" ? JSON.stringify(key.value) : String(key.value)}]`;
    })
    .join("");
}

describe("request validation", () => {
  it("answers {\"name\":\"\"} over Connect JSON with 400 invalid_argument and a buf.validate.Violations detail", async () => {
    const res = await fetch(`${server.url}/RouteGuide/GetPerson`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"name":""}',
    });
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: string; message: string; details: Array<{ type: string; value: string }> };
    assert.equal(body.code, "invalid_argument");
    assert.equal(body.message, "name: value is required [required]");
    assert.equal(body.details.length, 1);
    assert.equal(body.details[0]!.type, "buf.validate.Violations");
    assert.deepEqual(pairs(fromBinary(ViolationsSchema, Buffer.from(body.details[0]!.value, "base64"))), [["name", "required"]]);
  });

  it("refuses an empty name in a Connect GET URL the same way", async () => {
    const message = encodeURIComponent('{"name":""}');
    const res = await fetch(`${server.url}/RouteGuide/GetPerson?connect=v1&encoding=json&message=${message}`);
    assert.equal(res.status, 400);
    const body = (await res.json()) as { code: string; details: Array<{ type: string }> };
    assert.equal(body.code, "invalid_argument");
    assert.deepEqual(body.details.map((d) => d.type), ["buf.validate.Violations"]);
  });

  it("answers an empty name over gRPC with grpc-status 3 and the detail in grpc-status-details-bin", async () => {
    const reply = await h2Request(
      server.url,
      { ":path": "/RouteGuide/GetPerson", "content-type": "application/grpc", te: "trailers" },
      envelope(0, nameBytes("")),
    );
    assert.equal(grpcStatus(reply), Code.InvalidArgument);
    const details = reply.trailers["grpc-status-details-bin"] ?? reply.headers["grpc-status-details-bin"];
    assert.equal(typeof details, "string");
    // google.rpc.Status carries the Any by its type URL.
    assert.ok(Buffer.from(details as string, "base64").includes("type.googleapis.com/buf.validate.Violations"));
  });

  for (const protocol of protocols) {
    it(`refuses an empty name and a name over 100 characters over ${protocol}, with the rule that was broken`, async () => {
      const client = createRouteGuideClient({ baseUrl: server.url, protocol });
      assert.deepEqual(violationsOf(await client.getPerson({ name: "" }).catch((e: unknown) => e)), [["name", "required"]]);
      const long = await client.getPerson({ name: "n".repeat(101) }).catch((e: unknown) => e);
      assert.deepEqual(violationsOf(long), [["name", "string.max_len"]]);
      // 100 characters of two bytes each are within the rule: it counts characters.
      const edge = await client.getPerson({ name: "é".repeat(100) }).catch((e: unknown) => e);
      assert.ok(edge instanceof ConnectError && edge.code === Code.NotFound, String(edge));
      assert.equal((await client.getPerson({ name: "Alice" })).age, 30);
    });
  }

  for (const protocol of ["grpc", "connect"] as const) {
    it(`checks each message of a GetPeople stream over ${protocol}: the stream fails at the bad name`, async () => {
      const client = createRouteGuideClient({ baseUrl: server.url, protocol });
      async function* names(): AsyncIterable<Name> {
        for (const name of ["Alice", "", "Bob"]) yield create(NameSchema, { name });
      }
      const received: string[] = [];
      const err = await (async () => {
        for await (const person of client.getPeople(names())) received.push(person.name);
      })().catch((e: unknown) => e);
      assert.deepEqual(violationsOf(err), [["name", "required"]]);
      assert.ok(!received.includes("Bob"), `nothing after the bad name: ${received.join(", ")}`);
    });
  }
});

/**
 * Where a violation is: a list item, a map key, a field of a list's message.
 * protovalidate builds the path only when a rule is broken (a patch,
 * patches/@bufbuild+protovalidate+*.patch), so these cases are what keeps
 * it right; on both paths, which share the validator.
 */
describe("violation paths, on the engine and on connect-node's general path", () => {
  const long = "x".repeat(65);
  const cases: Array<{ title: string; request: ExerciseInit; paths: string[]; message?: string }> = [
    {
      title: "a list item",
      request: { echoHeaders: ["x-fine", long] },
      paths: ["echo_headers[1]"],
      message: "echo_headers[1]: must be at most 64 characters [string.max_len]",
    },
    {
      title: "a map key",
      request: { responseHeaders: { "x-fine": "v", [long]: "v" } },
      paths: [`response_headers["${long}"]`],
      message: `response_headers["${long}"]: must be at most 64 characters [string.max_len]`,
    },
    {
      title: "a field of a list's message, inside a message",
      request: { failure: { code: 3, details: [{ reason: "fine" }, { reason: long }] } },
      paths: ["failure.details[1].reason"],
      message: "failure.details[1].reason: must be at most 64 characters [string.max_len]",
    },
    {
      title: "three at once, in field order",
      request: { echoHeaders: [long], responseHeaders: { [long]: "v" }, label: long },
      paths: ["echo_headers[0]", `response_headers["${long}"]`, "label"],
    },
  ];
  for (const fastPath of [true, false]) {
    describe(fastPath ? "engine" : "general path", () => {
      let exercise: RunningServer;
      before(async () => (exercise = await startTestServer({ fastPath }, { services: exerciseRoutes })));
      after(() => exercise.close(0));
      const clientOver = (transport: "grpc" | "connect") => {
        const options = { baseUrl: exercise.url, httpVersion: "2" as const };
        return createClient(ExerciseService, transport === "grpc" ? createGrpcTransport(options) : createConnectTransport(options));
      };

      for (const transport of ["grpc", "connect"] as const) {
        for (const { title, request, paths, message } of cases) {
          it(`${title}, over ${transport}`, async () => {
            const err = await clientOver(transport).unary(create(ExerciseRequestSchema, request)).catch((e: unknown) => e);
            assert.deepEqual(violationsOf(err), paths.map((p) => [p, "string.max_len"]));
            assert.ok(err instanceof ConnectError);
            if (message !== undefined) assert.equal(err.rawMessage, message);
            // A map key's violation says that it is the key's, not the value's.
            const [violations] = err.findDetails(ViolationsSchema);
            assert.deepEqual(violations?.violations.map((v) => v.forKey), paths.map((p) => p.startsWith("response_headers")));
          });
        }

        it(`each message of a bidi stream has its own path, over ${transport}`, async () => {
          async function* requests(): AsyncIterable<ExerciseRequest> {
            yield create(ExerciseRequestSchema, { responses: 1, echoHeaders: ["x-fine"] });
            yield create(ExerciseRequestSchema, { responses: 1, echoHeaders: ["x-fine", "x-fine", long] });
          }
          let received = 0;
          const err = await (async () => {
            for await (const _ of clientOver(transport).bidi(requests())) received++;
          })().catch((e: unknown) => e);
          assert.ok(err instanceof ConnectError && err.code === Code.InvalidArgument, String(err));
          assert.equal(err.rawMessage, "echo_headers[2]: must be at most 64 characters [string.max_len]");
          assert.equal(received, 1);
        });
      }
    });
  }
});
