import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Message } from "@bufbuild/protobuf";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { type Compression, mergeNonProtocolHeaders } from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  contentTypeUnaryJson,
  contentTypeUnaryProto,
  contentTypeUnaryRegExp,
  errorToJsonBytes,
  parseTimeout,
} from "@connectrpc/connect/protocol-connect";
import type { Engine, MethodEntry } from "./engine.js";
import { asError, deadlineExceeded, tooLarge } from "./errors.js";
import { header, HttpCall, type HttpProtocol, type Request, type Response } from "./http-call.js";

/**
 * Connect unary calls (POST with a JSON or binary body, and GET for methods
 * marked NO_SIDE_EFFECTS) of every unary method, without connect-node's
 * general machinery (Web Headers, AbortControllers, an async-iterable
 * pipeline for one message). The decision is taken on the headers alone,
 * before the body is read; what it leaves to connect-node (compressed
 * requests, streams, other content types) goes there unread. What it
 * answers, it answers as connect-node does, step for step: Connect's
 * parsers, limits, timeout parsing, error JSON and status mapping, the
 * handler's headers and `trailer-` prefixed trailers.
 */
export function createConnectEngine(engine: Engine): HttpProtocol {
  return (req, res) => take(engine, req, res);
}

function take(engine: Engine, req: Request, res: Response): boolean {
  const url = req.url ?? "";
  const query = url.indexOf("?");
  const entry = engine.methods.get(query === -1 ? url : url.slice(0, query));
  if (entry === undefined || entry.method.methodKind !== "unary") return false;
  if (req.method === "POST") {
    const binary = unaryContentType(header(req, "content-type"));
    if (binary === undefined) return false;
    const encoding = header(req, "content-encoding");
    if (encoding !== null && encoding !== "identity") return false;
    const version = header(req, "connect-protocol-version");
    if (version === null ? engine.settings.requireConnectProtocolHeader : version !== "1") return false;
    start(new ConnectCall(engine, entry, req, res, binary), undefined);
    return true;
  }
  if (req.method === "GET" && entry.idempotent && query !== -1) {
    // The query's parameters, as Connect reads them through new URL(): nothing it would normalise differently.
    const search = url.slice(query + 1);
    if (header(req, "content-type") !== null || /[^\x21-\x7e]|#/.test(search)) return false;
    const params = new URLSearchParams(search);
    const encoding = params.get("encoding");
    if (encoding !== "json" && encoding !== "proto") return false;
    const compression = params.get("compression");
    if (compression !== null && compression !== "identity") return false;
    const version = params.get("connect");
    if (version === null ? engine.settings.requireConnectProtocolHeader : version !== "v1") return false;
    const message = params.get("message") ?? "";
    // src/http/request-guard.ts has already refused base64 that does not decode.
    const input = params.get("base64") === "1" ? base64Decode(message) : textEncoder.encode(message);
    start(new ConnectCall(engine, entry, req, res, encoding === "proto"), input);
    return true;
  }
  return false;
}

/** What connect-node's unary handler does once it has the call: timeout, then the message. */
function start(call: ConnectCall, query: Uint8Array | undefined): void {
  const timeout = parseTimeout(header(call.req, "connect-timeout-ms"), call.engine.settings.maxTimeoutMs);
  if (timeout.error) return call.fail(timeout.error);
  const shutdown = call.engine.shutdownReason;
  if (shutdown !== undefined) return call.fail(shutdown);
  if (!call.startDeadline(timeout.timeoutMs)) return call.fail(deadlineExceeded());
  if (query !== undefined) return call.answer(query);
  // Connect's readAllBytes: a declared length is trusted to refuse early, then held to.
  const declared = header(call.req, "content-length");
  const hint = declared === null ? NaN : parseInt(declared, 10);
  const readMaxBytes = call.engine.settings.readMaxBytes;
  if (Number.isSafeInteger(hint) && hint >= 0) {
    if (hint > readMaxBytes) return call.fail(tooLarge(hint, readMaxBytes));
    call.declared = hint;
  }
  call.readBody();
}

const emptyBody = new Uint8Array(0);
const textEncoder = new TextEncoder();

/** A Connect unary call: its body is collected as connect-node's readAllBytes does. */
class ConnectCall extends HttpCall {
  /** The content-length, when one was declared; -1 when not. */
  declared = -1;
  #first: Buffer | undefined = undefined;
  #chunks: Buffer[] | undefined = undefined;
  #received = 0;

  constructor(
    engine: Engine,
    entry: MethodEntry,
    req: Request,
    res: Response,
    readonly binary: boolean,
  ) {
    super(engine, entry, req, res, "connect", binary ? protoHeader : jsonHeader, noTrailer);
  }

  /** With a declared length, exactly that many bytes; else at most readMaxBytes. */
  onData(chunk: Buffer): void {
    this.#received += chunk.length;
    const readMaxBytes = this.engine.settings.readMaxBytes;
    const limit = this.declared >= 0 ? this.declared : readMaxBytes;
    if (this.#received <= limit) {
      if (this.#first === undefined) this.#first = chunk;
      else (this.#chunks ??= [this.#first]).push(chunk);
      return;
    }
    this.abandonBody();
    this.fail(
      this.declared >= 0
        ? promised(this.declared, this.#received)
        : new ConnectError(`message size is larger than configured readMaxBytes ${limit}`, Code.ResourceExhausted),
    );
  }

  onEnd(): void {
    if (this.declared >= 0 && this.#received < this.declared) return this.fail(promised(this.declared, this.#received));
    this.answer(this.#chunks !== undefined ? Buffer.concat(this.#chunks, this.#received) : (this.#first ?? emptyBody));
  }

  /** The call's message has arrived: parse it, call the handler, send its answer. */
  answer(input: Uint8Array): void {
    if (this.done) return;
    let message: Message;
    try {
      message = this.entry.serialization.getI(this.binary).parse(input) as Message;
    } catch (e) {
      return this.fail(e);
    }
    this.reached();
    this.entry.invoker.unary(this.ctx, message, this);
  }

  /** For the invoker: the handler's answer. */
  reply(output: Message): void {
    const bytes = this.settleReply(output, this.binary);
    if (bytes !== undefined) this.#send(200, bytes, output);
  }

  /**
   * Connect's error response, with the error's metadata as headers.
   * `fromService`: raised inside the router (the log's reason).
   */
  override fail(e: unknown, fromService = false): void {
    if (!this.settle()) return;
    if (fromService && this.record !== undefined) this.record.cause = e;
    const error = asError(e);
    this.ctx.abort(error);
    const headers = this.ctx.responseHeader;
    headers.set("content-type", contentTypeUnaryJson);
    if (!error.isWireError) mergeNonProtocolHeaders(headers, error.metadata);
    this.#send(codeToHttpStatus(error.code), errorToJsonBytes(error, this.engine.settings.jsonOptions));
  }

  /** Connect compresses what is large enough, with the first encoding the client accepts. */
  #send(status: number, body: Uint8Array, output?: Message): void {
    if (body.byteLength < this.engine.settings.compressMinBytes) return this.#write(status, body, null, output);
    const compression = this.engine.responseCompression(header(this.req, "accept-encoding"), "Accept-Encoding");
    if (compression === null) return this.#write(status, body, null, output);
    compression.compress(body).then(
      (compressed) => this.#write(status, compressed, compression),
      // connect-node leaves such a response unwritten; a reset at least ends it.
      () => this.res.destroy(),
    );
  }

  /** `output`: the message behind a successful body, whose JSON goes out as text. */
  #write(status: number, body: Uint8Array, compression: Compression | null, output?: Message): void {
    // First, where the request guard's setHeader put it for connect-node's path.
    const out: OutgoingHttpHeaders = { "accept-encoding": this.engine.acceptEncodings };
    const ctx = this.ctx;
    if (!ctx.headerTouched) out["content-type"] = this.binary ? contentTypeUnaryProto : contentTypeUnaryJson;
    else ctx.responseHeader.forEach((value, key) => (out[key] = value));
    // connect-es's trailerMux: a unary answer carries its trailers as headers.
    if (ctx.trailerTouched) ctx.responseTrailer.forEach((value, key) => (out[`trailer-${key}`] = value));
    if (compression !== null) out["content-encoding"] = compression.name;
    out["content-length"] = body.byteLength;
    (this.res as ServerResponse).writeHead(status, out);
    // JSON goes out with the headers as one string (bytes would be a second buffer of a writev).
    this.endResponse(this.binary || compression !== null || output === undefined ? body : this.entry.jsonText(output, body));
  }
}

const protoHeader = Object.freeze({ "content-type": contentTypeUnaryProto });
const jsonHeader = Object.freeze({ "content-type": contentTypeUnaryJson });
const noTrailer = Object.freeze({});

function promised(declared: number, received: number): ConnectError {
  return new ConnectError(`protocol error: promised ${declared} bytes, received ${received}`, Code.InvalidArgument);
}

/** Connect's unary content types: binary (true), JSON (false), or undefined for anything else. */
function unaryContentType(type: string | null): boolean | undefined {
  if (type === contentTypeUnaryJson) return false;
  if (type === contentTypeUnaryProto) return true;
  if (type === null || !contentTypeUnaryRegExp.test(type)) return undefined;
  return /proto$/i.test(type);
}
