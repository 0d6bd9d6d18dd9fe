import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import {
  FileDescriptorProtoSchema,
  FileDescriptorSetSchema,
  MethodOptions_IdempotencyLevel,
} from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { file_route_guide } from "../gen/route_guide_pb.js";
import { registerReflection } from "../src/grpc-services/reflection.js";
import type { RunningServer } from "../src/server.js";
import { startTestServer } from "./support/server.js";

type Request = NonNullable<Parameters<typeof create<typeof v1.ServerReflectionRequestSchema>>[1]>;
type Response = v1.ServerReflectionResponse;

const routes = (router: Parameters<typeof registerReflection>[0]) =>
  registerReflection(router, [file_route_guide, file_grpc_health_v1_health]);

const symbol = (value: string): Request => ({ messageRequest: { case: "fileContainingSymbol", value } });
const filename = (value: string): Request => ({ messageRequest: { case: "fileByFilename", value } });
// What person.proto imports for its buf.validate options, breadth-first as the server sends them.
const validateFiles = [
  "buf/validate/validate.proto",
  "google/protobuf/descriptor.proto",
  "google/protobuf/duration.proto",
  "google/protobuf/field_mask.proto",
  "google/protobuf/timestamp.proto",
];
const routeGuideFiles = ["route_guide.proto", "buf/validate/validate.proto", "person.proto", ...validateFiles.slice(1)];

/** The file names in a file_descriptor_response, in order; fails on any other answer. */
function fileNames(response: Response): string[] {
  const answer = response.messageResponse;
  assert.equal(answer.case, "fileDescriptorResponse", JSON.stringify(answer.value));
  return answer.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

function errorCode(response: Response): number {
  const answer = response.messageResponse;
  assert.equal(answer.case, "errorResponse", JSON.stringify(answer.value));
  return answer.value.errorCode;
}

// Both versions share every message shape; only the package differs. Clients try v1, then v1alpha.
for (const service of [v1.ServerReflection, v1alpha.ServerReflection]) {
  describe(service.typeName, () => {
    /** Sends `requests` on one stream and collects the answers. */
    async function reflect(...requests: Request[]): Promise<Response[]> {
      const client = createClient(service as typeof v1.ServerReflection, createRouterTransport(routes));
      const responses: Response[] = [];
      async function* send() {
        yield* requests;
      }
      for await (const response of client.serverReflectionInfo(send())) responses.push(response);
      assert.equal(responses.length, requests.length, "one answer per request");
      return responses;
    }

    it("lists the served services and itself", async () => {
      const [response] = await reflect({ host: "example", messageRequest: { case: "listServices", value: "" } });
      assert.equal(response.validHost, "example");
      assert.equal(response.originalRequest?.messageRequest.case, "listServices");
      assert.equal(response.messageResponse.case, "listServicesResponse");
      assert.deepEqual(
        response.messageResponse.value.service.map((s) => s.name),
        ["RouteGuide", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"],
      );
    });

    it("returns a file by name with its imports, enough to rebuild the schema", async () => {
      const [response] = await reflect(filename("route_guide.proto"));
      assert.deepEqual(fileNames(response), routeGuideFiles);

      assert.equal(response.messageResponse.case, "fileDescriptorResponse");
      const file = response.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b));
      // Throws if an import is missing; wants imports first, as protoc writes a descriptor set.
      const ordered: typeof file = [];
      const placed = (name: string) => ordered.some((f) => f.name === name);
      for (let i = 0; i < file.length; i++) {
        const next = file.find((f) => !placed(f.name) && f.dependency.every(placed));
        assert.ok(next !== undefined, `an import is missing: ${fileNames(response).join(", ")}`);
        ordered.push(next);
      }
      const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: ordered }));
      const getPerson = registry.getService("RouteGuide")?.methods.find((m) => m.name === "GetPerson");
      assert.equal(getPerson?.input.typeName, "Name");
      assert.equal(getPerson?.output.typeName, "Person");
      assert.equal(getPerson?.idempotency, MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS);
      // protoc-gen-es drops default json_names from the embedded descriptor; they must be back.
      const person = file.find((f) => f.name === "person.proto");
      assert.equal(person?.messageType[0].field.find((f) => f.name === "name")?.jsonName, "name");
      assert.deepEqual(registry.getEnum("Person.Gender")?.values.map((v) => [v.name, v.number]), [
        ["UNKNOWN", 0],
        ["MALE", 1],
        ["FEMALE", 2],
      ]);
    });

    it("finds the file declaring a service, method, message, nested type, field or enum value", async () => {
      const symbols = {
        RouteGuide: "route_guide.proto",
        "RouteGuide.GetPerson": "route_guide.proto",
        "RouteGuide.GetPeople": "route_guide.proto",
        Name: "route_guide.proto",
        Person: "person.proto",
        "Person.Gender": "person.proto",
        "Person.FEMALE": "person.proto",
        "Person.Address": "person.proto",
        "Person.Address.city": "person.proto",
        "Person.hobbies": "person.proto",
        "grpc.health.v1.Health.Watch": "grpc/health/v1/health.proto",
        "grpc.health.v1.HealthCheckResponse.ServingStatus": "grpc/health/v1/health.proto",
        "grpc.health.v1.HealthListResponse.StatusesEntry": "grpc/health/v1/health.proto",
        "grpc.reflection.v1.ServerReflection": "grpc/reflection/v1/reflection.proto",
        "grpc.reflection.v1alpha.ServerReflectionResponse.message_response": "grpc/reflection/v1alpha/reflection.proto",
      };
      // A fresh stream per symbol, so that every answer starts with the declaring file.
      for (const [name, file] of Object.entries(symbols)) {
        const [response] = await reflect(symbol(name));
        assert.equal(fileNames(response)[0], file, name);
      }
    });

    it("sends each file once per stream, but always the one asked for", async () => {
      const responses = await reflect(symbol("Person"), symbol("RouteGuide"), filename("person.proto"));
      assert.deepEqual(responses.map(fileNames), [
        ["person.proto", ...validateFiles],
        ["route_guide.proto"],
        ["person.proto"],
      ]);
    });

    it("answers NOT_FOUND inside the stream and goes on with the next request", async () => {
      const responses = await reflect(
        symbol("NoSuchThing"),
        symbol("RouteGuide.NoSuchMethod"),
        filename("nope.proto"),
        symbol("RouteGuide.GetPerson"),
      );
      assert.deepEqual(responses.slice(0, 3).map(errorCode), [Code.NotFound, Code.NotFound, Code.NotFound]);
      assert.deepEqual(fileNames(responses[3]), routeGuideFiles);
    });

    it("knows of no extensions: NOT_FOUND for one, an empty list for a message, NOT_FOUND for an unknown type", async () => {
      const [extension, numbers, unknownType] = await reflect(
        { messageRequest: { case: "fileContainingExtension", value: { containingType: "Person", extensionNumber: 100 } } },
        { messageRequest: { case: "allExtensionNumbersOfType", value: "Person" } },
        { messageRequest: { case: "allExtensionNumbersOfType", value: "NoSuchType" } },
      );
      assert.equal(errorCode(extension), Code.NotFound);
      assert.equal(numbers.messageResponse.case, "allExtensionNumbersResponse");
      assert.equal(numbers.messageResponse.value.baseTypeName, "Person");
      assert.deepEqual(numbers.messageResponse.value.extensionNumber, []);
      assert.equal(errorCode(unknownType), Code.NotFound);
    });

    it("answers INVALID_ARGUMENT to an empty request and goes on", async () => {
      const [empty, next] = await reflect({}, symbol("Name"));
      assert.equal(errorCode(empty), Code.InvalidArgument);
      assert.deepEqual(fileNames(next), routeGuideFiles);
    });

    // Reflection reads its input plainly: the engine and the request guard end such a wait at shutdown.
    for (const fastPath of [true, false]) {
      it(`ends a stream waiting for its next request when the server shuts down (engine ${fastPath ? "on" : "off"})`, { timeout: 10_000 }, async () => {
        const server = await startTestServer({ fastPath });
        const client = createClient(service as typeof v1.ServerReflection, createGrpcTransport({ baseUrl: server.url }));
        async function* oneRequestThenSilence() {
          yield { messageRequest: { case: "listServices" as const, value: "" } };
          await new Promise(() => {}); // never sends another request nor closes
        }
        const responses = client.serverReflectionInfo(oneRequestThenSilence())[Symbol.asyncIterator]();
        assert.equal((await responses.next()).value?.messageResponse.case, "listServicesResponse");
        const end = responses.next();
        const closed = server.close(0);
        await assert.rejects(end, (e) => ConnectError.from(e).code === Code.Unavailable);
        await closed;
      });
    }
  });
}

// buf curl knows nothing of our protos: everything it does here goes through reflection.
describe("buf curl against the real server", () => {
  const buf = fileURLToPath(new URL("../node_modules/.bin/buf", import.meta.url));
  let server: RunningServer;
  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  async function bufCurl(...args: string[]): Promise<string> {
    const { stdout } = await promisify(execFile)(buf, ["curl", "--http2-prior-knowledge", "--timeout", "20s", ...args]);
    return stdout;
  }

  it("lists the services over v1 and v1alpha reflection", async () => {
    const expected = [
      "RouteGuide",
      "grpc.health.v1.Health",
      "grpc.reflection.v1.ServerReflection",
      "grpc.reflection.v1alpha.ServerReflection",
    ];
    for (const reflectProtocol of ["grpc-v1", "grpc-v1alpha"]) {
      const listed = await bufCurl("--reflect-protocol", reflectProtocol, "--list-services", server.url);
      assert.deepEqual(listed.trim().split("\n").sort(), expected, reflectProtocol);
    }
  });

  it("lists the methods", async () => {
    const methods = (await bufCurl("--list-methods", server.url)).trim().split("\n");
    for (const method of ["RouteGuide/GetPerson", "RouteGuide/GetPeople", "grpc.health.v1.Health/Check"]) {
      assert.ok(methods.includes(method), `${method} in ${methods.join(", ")}`);
    }
  });

  for (const protocol of ["grpc", "grpcweb", "connect"]) {
    it(`calls RouteGuide/GetPerson over ${protocol}`, async () => {
      const out = await bufCurl("--protocol", protocol, "-d", '{"name":"Alice"}', `${server.url}/RouteGuide/GetPerson`);
      assert.deepEqual(JSON.parse(out), {
        name: "Alice",
        age: 30,
        gender: "FEMALE",
        hobbies: ["reading", "swimming"],
        address: { street: "123 Main St", city: "New York" },
      });
    });
  }

  it("checks health", async () => {
    const out = await bufCurl("--protocol", "grpc", "-d", '{"service":"RouteGuide"}', `${server.url}/grpc.health.v1.Health/Check`);
    assert.deepEqual(JSON.parse(out), { status: "SERVING" });
  });
});
