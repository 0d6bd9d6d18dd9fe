// The tutorial's Python server ported to @grpc/grpc-js: a reference peer for
// interop tests and a baseline for benchmarks, so it does nothing per call
// beyond the tutorial's logic.
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

/** proto-loader's view of the protos: original field names, enums as numbers, defaults filled in. */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  includeDirs: [fileURLToPath(new URL("../proto", import.meta.url))],
  keepCase: true,
  enums: Number,
  defaults: true,
};

export interface Name {
  name: string;
}

export interface Person {
  name: string;
  age?: number;
  gender?: number;
  hobbies?: string[];
  address?: { street: string; city: string };
}

/** The RouteGuide service definition as grpc-js sees it (client constructor with `.service`). */
export function loadRouteGuide(): grpc.ServiceClientConstructor {
  const definition = protoLoader.loadSync("route_guide.proto", PROTO_LOADER_OPTIONS);
  return grpc.loadPackageDefinition(definition).RouteGuide as grpc.ServiceClientConstructor;
}

const people = new Map<string, Person>([
  [
    "Alice",
    {
      name: "Alice",
      age: 30,
      gender: 2, // FEMALE
      hobbies: ["reading", "swimming"],
      address: { street: "123 Main St", city: "New York" },
    },
  ],
  [
    "Bob",
    {
      name: "Bob",
      age: 25,
      gender: 1, // MALE
      hobbies: ["gaming", "cycling"],
      address: { street: "456 Elm St", city: "Los Angeles" },
    },
  ],
]);

const routeGuide: grpc.UntypedServiceImplementation = {
  // As in the tutorial: unknown names get a person called "Not Found", not an error.
  GetPerson(call: grpc.ServerUnaryCall<Name, Person>, callback: grpc.sendUnaryData<Person>) {
    callback(null, people.get(call.request.name) ?? { name: "Not Found" });
  },
  // One reply per known name, as soon as it arrives; unknown names are skipped.
  GetPeople(call: grpc.ServerDuplexStream<Name, Person>) {
    call.on("data", ({ name }: Name) => {
      const person = people.get(name);
      if (person !== undefined) call.write(person);
    });
    call.on("end", () => call.end());
  },
};

export async function startGrpcJsServer(
  port: number,
  host = "127.0.0.1",
): Promise<{ port: number; close(): Promise<void> }> {
  const server = new grpc.Server();
  server.addService(loadRouteGuide().service, routeGuide);
  const boundPort = await new Promise<number>((resolve, reject) => {
    const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) =>
      err ? reject(err) : resolve(bound),
    );
  });
  return {
    port: boundPort,
    // Tests and benchmarks finish their calls before closing; nothing to drain.
    close: async () => server.forceShutdown(),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { port: { type: "string", default: "50051" } } });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`error: --port must be an integer from 0 to 65535, got ${JSON.stringify(values.port)}`);
    process.exit(2);
  }
  const server = await startGrpcJsServer(port);
  console.log(`Server started on port ${server.port}`);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void server.close().then(() => process.exit(0)));
  }
}
