import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Compression,
  compressionNegotiate,
  createMethodSerializationLookup,
  createMethodUrl,
  mergeNonProtocolHeaders,
  type MethodSerializationLookup,
  validateReadWriteMaxBytes,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  contentTypeUnaryRegExp,
  errorToJsonBytes,
  parseTimeout,
} from "@connectrpc/connect/protocol-connect";
import type { Person } from "../gen/person_pb.js";
import { RouteGuide } from "../gen/route_guide_pb.js";
import { getMaxAgeSeconds } from "./http/cache.js";
import { cachedSerialization } from "./cached-serialization.js";
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

/**
 * Connect unary GetPerson (POST with a JSON or binary body, and GET) without
 * connect-node's general machinery, which costs several times the call
 * itself: Web Headers, AbortControllers that build a DOMException on every
 * call, and an async-iterable pipeline for a single message. The decision is
 * taken on the headers alone, before the body is read; whatever this path
 * does not do (compressed requests, other content types, methods and paths,
 * anything unusual) is left to connect-node. What it does answer, it answers
 * as connect-node does, step for step (test/fast-connect.test.ts compares
 * the two): Connect's own parsers, limits, timeout parsing, error JSON and
 * status mapping, the same service logic (personNamed), the cache headers of
 * src/http/cache.ts, and the same call record for logs and metrics.
 */
export function createFastConnect(options: FastUnaryOptions): FastPath {
  const { connect } = options;
  assertHonoured("src/fast-connect.ts", connect, options.observability, [
    connect.requireConnectProtocolHeader === true && "requireConnectProtocolHeader",
    connect.jsonOptions !== undefined && "jsonOptions",
  ]);
  const fast = new FastConnect(options);
  return (req, res) => fast.take(req, res);
}

const getPerson = RouteGuide.method.getPerson;
const getPersonPath = createMethodUrl("/", getPerson);
const cacheable = `public, max-age=${getMaxAgeSeconds}`;

class FastConnect {
  readonly #options: FastUnaryOptions;
  readonly #limits: ReturnType<typeof validateReadWriteMaxBytes>;
  /** Largest request message: Connect's readMaxBytes. */
  readonly readMaxBytes: number;
  readonly #maxTimeoutMs: number;
  readonly #shutdownSignal: AbortSignal | undefined;
  readonly #acceptCompression: Compression[];
  /** Name's parsers and Person's serializers with Connect's limits and error messages. */
  readonly #serialization: MethodSerializationLookup<typeof getPerson.input, typeof getPerson.output>;
  /** Each person's answer, per format (JSON, binary), encoded once. */
  readonly #encoded: readonly [(p: Person) => Body, (p: Person) => Body];

  constructor(options: FastUnaryOptions) {
    this.#options = options;
    const settings = routerSettings(options.connect);
    this.#limits = settings.limits;
    this.readMaxBytes = this.#limits.readMaxBytes;
    this.#maxTimeoutMs = settings.maxTimeoutMs;
    this.#shutdownSignal = settings.shutdownSignal;
    this.#acceptCompression = settings.acceptCompression;
    this.#serialization = createMethodSerializationLookup(getPerson, undefined, undefined, this.#limits);
    const json = this.#serialization.getO(false);
    const binary = this.#serialization.getO(true);
    this.#encoded = [
      cachedSerialization((person: Person) => jsonBody(json.serialize(person))),
      cachedSerialization((person: Person) => ({ bytes: binary.serialize(person), text: undefined })),
    ];
  }

  /** Takes the request when its headers show nothing this path leaves to connect-node. */
  take(req: Request, res: Response): boolean {
    const url = req.url ?? "";
    if (!isPath(url, getPersonPath)) return false;
    if (req.method === "POST") {
      const binary = unaryContentType(header(req, "content-type"));
      if (binary === undefined) return false;
      const encoding = header(req, "content-encoding");
      if (encoding !== null && encoding !== "identity") return false;
      const version = header(req, "connect-protocol-version");
      if (version !== null && version !== "1") return false;
      this.#start(new FastCall(this, req, res, binary, false), undefined);
      return true;
    }
    if (req.method === "GET") {
      // The query's parameters, as Connect reads them through new URL(): nothing it would normalise differently.
      const query = url.slice(getPersonPath.length + 1);
      if (header(req, "content-type") !== null || /[^\x21-\x7e]|#/.test(query)) return false;
      const params = new URLSearchParams(query);
      const encoding = params.get("encoding");
      if (encoding !== "json" && encoding !== "proto") return false;
      const compression = params.get("compression");
      if (compression !== null && compression !== "identity") return false;
      const version = params.get("connect");
      if (version !== null && version !== "v1") return false;
      const message = params.get("message") ?? "";
      // src/http/request-guard.ts has already refused base64 that does not decode.
      const input = params.get("base64") === "1" ? base64Decode(message) : textEncoder.encode(message);
      this.#start(new FastCall(this, req, res, encoding === "proto", true), input);
      return true;
    }
    return false;
  }

  /** What connect-node's unary handler does once it has the call: timeout, then the message. */
  #start(call: FastCall, query: Uint8Array | undefined): void {
    const timeout = parseTimeout(header(call.req, "connect-timeout-ms"), this.#maxTimeoutMs);
    if (timeout.error) return this.fail(call, timeout.error, false);
    call.timeoutMs = timeout.timeoutMs;
    if (query !== undefined) return this.answer(call, query);
    // Connect's readAllBytes: a declared length is trusted to refuse early, then held to.
    const declared = header(call.req, "content-length");
    const hint = declared === null ? NaN : parseInt(declared, 10);
    if (Number.isSafeInteger(hint) && hint >= 0) {
      if (hint > this.readMaxBytes) {
        const message = `message size ${hint} is larger than configured readMaxBytes ${this.readMaxBytes}`;
        return this.fail(call, new ConnectError(message, Code.ResourceExhausted), false);
      }
      call.declared = hint;
    }
    call.readBody();
  }

  /** The call's message has arrived: parse it, ask the service, send the person. */
  answer(call: FastCall, input: Uint8Array): void {
    let name: string;
    try {
      name = (call.binary ? undefined : plainJsonName(input, this.readMaxBytes)) ?? this.#parse(call.binary, input);
    } catch (e) {
      return this.fail(call, e, false);
    }
    let person: Person;
    try {
      person = observedGetPerson(this.#options, call, this.#shutdownSignal, name);
    } catch (e) {
      return this.fail(call, e, true);
    }
    let body: Body;
    try {
      body = this.#encoded[call.binary ? 1 : 0](person);
    } catch (e) {
      return this.fail(call, e, false);
    }
    const headers: OutgoingHttpHeaders = { "content-type": call.binary ? contentTypeUnaryProto : contentTypeUnaryJson };
    if (call.isGet) headers["cache-control"] = cacheable;
    this.#send(call, 200, headers, body);
  }

  /** Connect's own parser: its limits and error messages. */
  #parse(binary: boolean, input: Uint8Array): string {
    return this.#serialization.getI(binary).parse(input).name;
  }

  /**
   * Connect's error response, with the error's metadata as headers.
   * `fromService`: raised where the interceptors see it, so on a GET
   * src/http/cache.ts's interceptor marks it no-store, as it does on connect-node's path.
   */
  fail(call: FastCall, e: unknown, fromService: boolean): void {
    if (fromService && call.isGet && e instanceof ConnectError) e.metadata.set("cache-control", "no-store");
    const error = e instanceof ConnectError ? e : new ConnectError("internal error", Code.Internal, undefined, undefined, e);
    const headers: OutgoingHttpHeaders = { "content-type": contentTypeUnaryJson };
    if (!error.isWireError) {
      const merged = new Headers();
      mergeNonProtocolHeaders(merged, error.metadata);
      merged.forEach((value, key) => (headers[key] = value));
    }
    this.#send(call, codeToHttpStatus(error.code), headers, { bytes: errorToJsonBytes(error, undefined), text: undefined });
  }

  /** Connect compresses what is large enough, with the first encoding the client accepts. */
  #send(call: FastCall, status: number, headers: OutgoingHttpHeaders, body: Body): void {
    if (body.bytes.byteLength < this.#limits.compressMinBytes) return writeResponse(call.res, status, headers, body);
    const accepted = header(call.req, "accept-encoding");
    const compression = compressionNegotiate(this.#acceptCompression, null, accepted, "Accept-Encoding").response;
    if (compression === null) return writeResponse(call.res, status, headers, body);
    compression.compress(body.bytes).then(
      (compressed) => {
        headers["content-encoding"] = compression.name;
        writeResponse(call.res, status, headers, { bytes: compressed, text: undefined });
      },
      // connect-node leaves such a response unwritten; a reset at least ends it.
      () => call.res.destroy(),
    );
  }
}

/** A Connect call: its body is collected as connect-node's readAllBytes does. */
class FastCall extends UnaryCall {
  /** The content-length, when one was declared; -1 when not. */
  declared = -1;
  #first: Buffer | undefined = undefined;
  #chunks: Buffer[] | undefined = undefined;
  #received = 0;

  constructor(
    readonly handler: FastConnect,
    req: Request,
    res: Response,
    readonly binary: boolean,
    readonly isGet: boolean,
  ) {
    super(req, res);
  }

  /** With a declared length, exactly that many bytes; else at most readMaxBytes. */
  onData(chunk: Buffer): void {
    this.#received += chunk.length;
    const limit = this.declared >= 0 ? this.declared : this.handler.readMaxBytes;
    if (this.#received <= limit) {
      if (this.#first === undefined) this.#first = chunk;
      else (this.#chunks ??= [this.#first]).push(chunk);
      return;
    }
    this.abandonBody();
    const error =
      this.declared >= 0
        ? new ConnectError(`protocol error: promised ${this.declared} bytes, received ${this.#received}`, Code.InvalidArgument)
        : new ConnectError(`message size is larger than configured readMaxBytes ${limit}`, Code.ResourceExhausted);
    this.handler.fail(this, error, false);
  }

  onEnd(): void {
    this.stopReading();
    if (this.declared >= 0 && this.#received < this.declared) {
      const error = new ConnectError(`protocol error: promised ${this.declared} bytes, received ${this.#received}`, Code.InvalidArgument);
      return this.handler.fail(this, error, false);
    }
    this.handler.answer(this, this.#chunks !== undefined ? Buffer.concat(this.#chunks, this.#received) : (this.#first ?? emptyBody));
  }
}

const emptyBody = new Uint8Array(0);

/**
 * `{"name":"…"}` in printable ASCII without escapes, which is what Connect
 * clients send: its name, read without the general JSON parser, which
 * makes the same of these bytes. Undefined for anything else (other
 * spacing, escapes, more fields, too large), which Connect's parser takes.
 */
function plainJsonName(input: Uint8Array, readMaxBytes: number): string | undefined {
  if (input.byteLength > readMaxBytes) return undefined;
  return plainNameJson.exec(Buffer.from(input.buffer, input.byteOffset, input.byteLength).toString("latin1"))?.[1];
}

const plainNameJson = /^\{"name":"([\x20\x21\x23-\x5b\x5d-\x7e]*)"\}$/;
const textEncoder = new TextEncoder();

/** Connect's unary content types: binary (true), JSON (false), or undefined for anything else. */
function unaryContentType(type: string | null): boolean | undefined {
  if (type === contentTypeUnaryJson) return false;
  if (type === contentTypeUnaryProto) return true;
  if (type === null || !contentTypeUnaryRegExp.test(type)) return undefined;
  return /proto$/i.test(type);
}

/**
 * A response body: its bytes, and for JSON the same as a string, which
 * Node writes in one piece with the headers (bytes go out as a second
 * buffer of a writev, measurably slower for small answers).
 */
interface Body {
  bytes: Uint8Array;
  text: string | undefined;
}

const utf8 = new TextDecoder();

function jsonBody(bytes: Uint8Array): Body {
  return { bytes, text: utf8.decode(bytes) };
}

function writeResponse(res: Response, status: number, headers: OutgoingHttpHeaders, body: Body): void {
  headers["content-length"] = body.bytes.byteLength;
  (res as ServerResponse).writeHead(status, headers);
  res.end(body.text ?? body.bytes);
}
