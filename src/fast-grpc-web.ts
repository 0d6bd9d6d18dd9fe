import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  createMethodUrl,
  encodeEnvelope,
  envelopeCompress,
  type Serialization,
} from "@connectrpc/connect/protocol";
import {
  contentTypeProto,
  grpcStatusOk,
  parseTimeout,
  setTrailerStatus,
  trailerFlag,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import type { Person } from "../gen/person_pb.js";
import { type Name, RouteGuide } from "../gen/route_guide_pb.js";
import {
  assertHonoured,
  type FastPath,
  header,
  isPath,
  type Request,
  type Response,
  observedGetPerson,
  routerSettings,
  type FastUnaryOptions,
  UnaryCall,
} from "./fast-unary.js";
import { assertUncompressed, EnvelopeCache, EnvelopeSplitter } from "./engine/envelopes.js";

/**
 * gRPC-Web unary GetPerson (binary, what browsers' gRPC-Web clients send),
 * over HTTP/1.1 and HTTP/2, without connect-node's general machinery: the
 * same job as src/fast-connect.ts for the other protocol browsers speak.
 * It takes a request on its headers alone (no request compression, no
 * gRPC-Web text or JSON) and answers as connect-node does: Connect's
 * envelope rules and errors (src/engine/envelopes.ts, shared with the gRPC
 * fast path), timeout parsing, trailer frame, compression and status
 * codes, the same service logic and call record. test/fast-connect.test.ts
 * compares the two paths.
 */
export function createFastGrpcWeb(options: FastUnaryOptions): FastPath {
  const { connect } = options;
  assertHonoured("src/fast-grpc-web.ts", connect, options.observability, [
    EnvelopeCache.unsupported(connect.acceptCompression),
  ]);
  const fast = new FastGrpcWeb(options);
  return (req, res) => fast.take(req, res);
}

const getPerson = RouteGuide.method.getPerson;
const getPersonPath = createMethodUrl("/", getPerson);

/** The trailer frame of every successful call. */
const okTrailer = Buffer.from(encodeEnvelope(trailerFlag, trailerSerialize(new Headers({ "grpc-status": grpcStatusOk }))));

class FastGrpcWeb {
  readonly #options: FastUnaryOptions;
  readonly #maxTimeoutMs: number;
  readonly #shutdownSignal: AbortSignal | undefined;
  readonly #acceptCompression: Compression[];
  readonly #compressMinBytes: number;
  readonly readMaxBytes: number;
  /** Name's parser with Connect's limits and error messages ("parse binary: ..."). */
  readonly parseName: Serialization<Name>["parse"];
  readonly #people: EnvelopeCache<Person>;

  constructor(options: FastUnaryOptions) {
    this.#options = options;
    const { limits, maxTimeoutMs, shutdownSignal, acceptCompression } = routerSettings(options.connect);
    this.#maxTimeoutMs = maxTimeoutMs;
    this.#shutdownSignal = shutdownSignal;
    this.#acceptCompression = acceptCompression;
    this.#compressMinBytes = limits.compressMinBytes;
    this.readMaxBytes = limits.readMaxBytes;
    const serialization = createMethodSerializationLookup(getPerson, undefined, undefined, limits);
    this.parseName = serialization.getI(true).parse;
    const serializePerson = serialization.getO(true).serialize;
    this.#people = new EnvelopeCache<Person>((person) => serializePerson(person), limits.compressMinBytes);
  }

  /** Takes the request when its headers show nothing this path leaves to connect-node. */
  take(req: Request, res: Response): boolean {
    if (req.method !== "POST" || !isPath(req.url ?? "", getPersonPath)) return false;
    const type = header(req, "content-type");
    if (type !== "application/grpc-web" && type !== contentTypeProto) return false;
    const encoding = header(req, "grpc-encoding");
    if (encoding !== null && encoding !== "identity") return false;
    const accepted = header(req, "grpc-accept-encoding");
    const compression = compressionNegotiate(this.#acceptCompression, null, accepted, "grpc-accept-encoding").response;
    const call = new GrpcWebCall(this, req, res, compression);
    const timeout = parseTimeout(header(req, "grpc-timeout"), this.#maxTimeoutMs);
    // Connect raises it on the first read of the body, which it then never reads.
    if (timeout.error) this.fail(call, timeout.error);
    else {
      call.timeoutMs = timeout.timeoutMs;
      call.readBody();
    }
    return true;
  }

  /** The body is complete with its one message: ask the service, send the person and grpc-status 0. */
  answer(call: GrpcWebCall, name: string): void {
    let person: Person;
    try {
      person = observedGetPerson(this.#options, call, this.#shutdownSignal, name);
    } catch (e) {
      return this.fail(call, e);
    }
    writeResponse(call, Buffer.concat([this.#people.get(person, call.compression), okTrailer]));
  }

  /** The error's status in the trailer frame, which Connect compresses like any envelope when it is large. */
  fail(call: GrpcWebCall, e: unknown): void {
    const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
    const trailer = setTrailerStatus(new Headers({ "grpc-status": grpcStatusOk }), error);
    envelopeCompress({ flags: trailerFlag, data: trailerSerialize(trailer) }, call.compression, this.#compressMinBytes).then(
      (frame) => writeResponse(call, encodeEnvelope(frame.flags, frame.data)),
      // connect-node leaves such a response unwritten; a reset at least ends it.
      () => call.res.destroy(),
    );
  }
}

/** A gRPC-Web call: the body must hold exactly one message, as Connect's unary handler requires. */
class GrpcWebCall extends UnaryCall {
  readonly #reader: EnvelopeSplitter;
  #name: string | undefined = undefined;
  #count = 0;

  constructor(
    readonly handler: FastGrpcWeb,
    req: Request,
    res: Response,
    readonly compression: Compression | null,
  ) {
    super(req, res);
    this.#reader = new EnvelopeSplitter(handler.readMaxBytes);
  }

  /** Envelopes are checked and parsed as they arrive, in Connect's order: each message, then the count. */
  onData(chunk: Buffer): void {
    try {
      for (const envelope of this.#reader.push(chunk)) {
        assertUncompressed(envelope);
        const { name } = this.handler.parseName(envelope.data);
        if (++this.#count > 1) {
          throw new ConnectError("protocol error: received extra input message for unary method", Code.Unimplemented);
        }
        this.#name = name;
      }
    } catch (e) {
      this.abandonBody();
      this.handler.fail(this, e);
    }
  }

  onEnd(): void {
    this.stopReading();
    if (this.#reader.incomplete) {
      return this.handler.fail(this, new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument));
    }
    if (this.#name === undefined) {
      return this.handler.fail(this, new ConnectError("protocol error: missing input message for unary method", Code.Unimplemented));
    }
    this.handler.answer(this, this.#name);
  }
}

/** connect-node's gRPC-Web answer: HTTP 200 without a length (chunked on HTTP/1.1), the status in the body. */
function writeResponse(call: GrpcWebCall, body: Uint8Array): void {
  const headers: OutgoingHttpHeaders = { "content-type": contentTypeProto };
  if (call.compression !== null) headers["grpc-encoding"] = call.compression.name;
  (call.res as ServerResponse).writeHead(200, headers);
  call.res.end(body);
}
