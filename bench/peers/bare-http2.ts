// The ceiling: RouteGuide over gRPC straight on node:http2's stream API with
// protobuf-es, no framework. It still does each call's real work (parse the
// envelope, decode Name, look up, encode Person, trailers), nothing cached.
// It ignores grpc-timeout and compression (answers UNIMPLEMENTED to the
// latter): the benchmark's calls use neither.
import http2 from "node:http2";
import { parseArgs } from "node:util";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { PersonSchema } from "../../gen/person_pb.js";
import { NameSchema } from "../../gen/route_guide_pb.js";
import { type Directory, loadDirectory } from "../../src/routeguide/directory.js";
import { EnvelopeReader, envelope } from "../envelope.js";

const maxMessageBytes = 4 * 1024 * 1024;

const Status = {
  OK: 0,
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
} as const;

class GrpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

export function createBareServer(directory: Directory): http2.Http2Server {
  const server = http2.createServer();
  server.on("stream", (stream, headers) => {
    // A client that resets its stream must not bring the process down.
    stream.on("error", () => {});
    const contentType = headers["content-type"] ?? "";
    if (headers[":method"] !== "POST" || !/^application\/grpc(\+proto)?$/.test(contentType)) {
      stream.respond({ ":status": 415 }, { endStream: true });
      return;
    }
    const encoding = headers["grpc-encoding"];
    if (encoding !== undefined && encoding !== "identity") {
      return trailersOnly(stream, new GrpcError(Status.UNIMPLEMENTED, `compression ${encoding} is not supported`));
    }
    switch (headers[":path"]) {
      case "/RouteGuide/GetPerson":
        return getPerson(stream, directory);
      case "/RouteGuide/GetPeople":
        return getPeople(stream, directory);
      default:
        return trailersOnly(stream, new GrpcError(Status.UNIMPLEMENTED, `unknown method ${headers[":path"]}`));
    }
  });
  return server;
}

function getPerson(stream: http2.ServerHttp2Stream, directory: Directory): void {
  const requests: Buffer[] = [];
  const reader = new EnvelopeReader((flags, message) => {
    if (flags !== 0) throw new GrpcError(Status.INTERNAL, "compressed message without grpc-encoding");
    requests.push(message);
  }, maxMessageBytes);
  let failed = false;
  stream.on("data", (chunk: Buffer) => {
    if (failed) return;
    try {
      reader.push(chunk);
    } catch (err) {
      failed = true;
      trailersOnly(stream, asGrpcError(err));
    }
  });
  stream.on("end", () => {
    if (failed) return;
    try {
      if (reader.incomplete || requests.length !== 1) {
        throw new GrpcError(Status.INTERNAL, `expected one request message, got ${requests.length}`);
      }
      const reply = envelope(toBinary(PersonSchema, lookUp(directory, requests[0]!)));
      stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
      stream.end(reply);
    } catch (err) {
      trailersOnly(stream, asGrpcError(err));
    }
  });
}

function getPeople(stream: http2.ServerHttp2Stream, directory: Directory): void {
  let status: GrpcError | undefined;
  stream.respond({ ":status": 200, "content-type": "application/grpc+proto" }, { waitForTrailers: true });
  stream.once("wantTrailers", () => {
    stream.sendTrailers(
      status === undefined
        ? { "grpc-status": "0" }
        : { "grpc-status": String(status.code), "grpc-message": encodeURIComponent(status.message) },
    );
  });
  const fail = (err: unknown) => {
    status = asGrpcError(err);
    stream.removeAllListeners("data");
    stream.end();
  };
  const reader = new EnvelopeReader((flags, message) => {
    if (flags !== 0) throw new GrpcError(Status.INTERNAL, "compressed message without grpc-encoding");
    const name = fromBinary(NameSchema, message).name;
    if (name === "") throw new GrpcError(Status.INVALID_ARGUMENT, "name must not be empty");
    // Unknown names are skipped, as in the tutorial.
    const person = directory.get(name);
    if (person !== undefined) stream.write(envelope(toBinary(PersonSchema, person)));
  }, maxMessageBytes);
  stream.on("data", (chunk: Buffer) => {
    try {
      reader.push(chunk);
    } catch (err) {
      fail(err);
    }
  });
  stream.on("end", () => {
    if (status !== undefined) return;
    if (reader.incomplete) return fail(new GrpcError(Status.INTERNAL, "incomplete message at end of stream"));
    stream.end();
  });
}

function lookUp(directory: Directory, request: Buffer) {
  const { name } = fromBinary(NameSchema, request);
  if (name === "") throw new GrpcError(Status.INVALID_ARGUMENT, "name must not be empty");
  const person = directory.get(name);
  if (person === undefined) throw new GrpcError(Status.NOT_FOUND, `no person named ${JSON.stringify(name)}`);
  return person;
}

function asGrpcError(err: unknown): GrpcError {
  if (err instanceof GrpcError) return err;
  if (err instanceof RangeError) return new GrpcError(Status.RESOURCE_EXHAUSTED, err.message);
  return new GrpcError(Status.INTERNAL, err instanceof Error ? err.message : String(err));
}

/** An error before any response: status in the headers, no body (gRPC's "Trailers-Only"). */
function trailersOnly(stream: http2.ServerHttp2Stream, err: GrpcError): void {
  if (stream.headersSent || stream.destroyed) return;
  stream.respond(
    {
      ":status": 200,
      "content-type": "application/grpc+proto",
      "grpc-status": String(err.code),
      "grpc-message": encodeURIComponent(err.message),
    },
    { endStream: true },
  );
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { port: { type: "string", default: "0" } } });
  const server = createBareServer(await loadDirectory());
  server.listen(Number(values.port), "127.0.0.1", () => {
    const address = server.address();
    console.log(`Server started on port ${typeof address === "object" && address ? address.port : values.port}`);
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    // Benchmarks finish their calls before stopping a peer: nothing to drain.
    process.once(signal, () => process.exit(0));
  }
}
