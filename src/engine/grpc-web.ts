import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { Message } from "@bufbuild/protobuf";
import { type Compression, encodeEnvelope, envelopeCompress } from "@connectrpc/connect/protocol";
import {
  contentTypeJson,
  contentTypeProto,
  grpcStatusOk,
  parseTimeout,
  setTrailerStatus,
  trailerFlag,
  trailerSerialize,
} from "@connectrpc/connect/protocol-grpc-web";
import type { Engine, MethodEntry } from "./engine.js";
import { assertUncompressed, envelope, EnvelopeSplitter } from "./envelopes.js";
import { asError, deadlineExceeded, extraInput, incompleteEnvelope, missingInput } from "./errors.js";
import { CodecMemo } from "./headers.js";
import { header, HttpCall, type HttpProtocol, type Request, type Response } from "./http-call.js";

/**
 * gRPC-Web unary calls of every unary method (binary and JSON, what
 * browsers' gRPC-Web clients send), over HTTP/1.1 and HTTP/2, without
 * connect-node's general machinery: the same job as src/engine/connect.ts
 * for the other protocol browsers speak. It takes a request on its headers
 * alone (no request compression, no gRPC-Web text, no streams) and answers
 * as connect-node does: Connect's envelope rules and errors, timeout
 * parsing, the trailer frame, compression and status codes.
 */
export function createGrpcWebEngine(engine: Engine): HttpProtocol {
  return (req, res) => take(engine, req, res);
}

function take(engine: Engine, req: Request, res: Response): boolean {
  if (req.method !== "POST") return false;
  const url = req.url ?? "";
  const query = url.indexOf("?");
  const entry = engine.methods.get(query === -1 ? url : url.slice(0, query));
  if (entry === undefined || entry.method.methodKind !== "unary") return false;
  const type = header(req, "content-type");
  const binary = type === "application/grpc-web" || type === contentTypeProto ? true : type === contentTypeJson ? false : undefined;
  if (binary === undefined) return false;
  const encoding = header(req, "grpc-encoding");
  if (encoding !== null && encoding !== "identity") return false;
  const compression = engine.responseCompression(header(req, "grpc-accept-encoding"), "grpc-accept-encoding");
  const call = new GrpcWebCall(engine, entry, req, res, binary, compression);
  const timeout = parseTimeout(header(req, "grpc-timeout"), engine.settings.maxTimeoutMs);
  // Connect raises it on the first read of the body, which it then never reads.
  if (timeout.error) call.fail(timeout.error);
  else if (engine.shutdownReason !== undefined) call.fail(engine.shutdownReason);
  else if (!call.startDeadline(timeout.timeoutMs)) call.fail(deadlineExceeded());
  else call.readBody();
  return true;
}

const okTrailer = Object.freeze({ "grpc-status": grpcStatusOk });
const okTrailerFrame = Buffer.from(encodeEnvelope(trailerFlag, trailerSerialize(new Headers(okTrailer))));

/** A gRPC-Web call: the body must hold exactly one message, as Connect's unary handler requires. */
class GrpcWebCall extends HttpCall {
  readonly #reader: EnvelopeSplitter;
  #message: Message | undefined = undefined;
  #count = 0;

  constructor(
    engine: Engine,
    entry: MethodEntry,
    req: Request,
    res: Response,
    readonly binary: boolean,
    readonly compression: Compression | null,
  ) {
    super(engine, entry, req, res, "grpc-web", initialHeaders.get(binary, compression), okTrailer);
    this.#reader = new EnvelopeSplitter(engine.settings.readMaxBytes);
  }

  /** Envelopes are checked and parsed as they arrive, in Connect's order: each message, then the count. */
  onData(chunk: Buffer): void {
    try {
      for (const frame of this.#reader.push(chunk)) {
        assertUncompressed(frame);
        const message = this.entry.serialization.getI(this.binary).parse(frame.data) as Message;
        if (++this.#count > 1) throw extraInput("unary");
        this.#message = message;
      }
    } catch (e) {
      this.abandonBody();
      this.fail(e);
    }
  }

  onEnd(): void {
    if (this.#reader.incomplete) return this.fail(incompleteEnvelope());
    if (this.#message === undefined) return this.fail(missingInput("unary"));
    this.reached();
    this.entry.invoker.unary(this.ctx, this.#message, this);
  }

  /** For the invoker: the handler's answer. */
  reply(output: Message): void {
    const data = this.settleReply(output, this.binary);
    if (data === undefined) return;
    const trailer = this.ctx.trailerTouched ? this.ctx.responseTrailer : undefined;
    const minBytes = this.engine.settings.compressMinBytes;
    if (this.compression === null || (data.byteLength < minBytes && trailer === undefined)) {
      const end = trailer === undefined ? okTrailerFrame : encodeEnvelope(trailerFlag, trailerSerialize(trailer));
      return this.#write(Buffer.concat([envelope(0, data), end]));
    }
    Promise.all([
      envelopeCompress({ flags: 0, data }, this.compression, minBytes),
      envelopeCompress({ flags: trailerFlag, data: trailerSerialize(this.ctx.responseTrailer) }, this.compression, minBytes),
    ]).then(
      ([message, end]) => this.#write(Buffer.concat([encodeEnvelope(message.flags, message.data), encodeEnvelope(end.flags, end.data)])),
      () => this.res.destroy(),
    );
  }

  /** The error's status in the trailer frame, which Connect compresses like any envelope when it is large. */
  override fail(e: unknown, fromService = false): void {
    if (!this.settle()) return;
    if (fromService && this.record !== undefined) this.record.cause = e;
    const error = asError(e);
    this.ctx.abort(error);
    const trailer = setTrailerStatus(this.ctx.responseTrailer, error);
    envelopeCompress({ flags: trailerFlag, data: trailerSerialize(trailer) }, this.compression, this.engine.settings.compressMinBytes).then(
      (frame) => this.#write(encodeEnvelope(frame.flags, frame.data)),
      // connect-node leaves such a response unwritten; a reset at least ends it.
      () => this.res.destroy(),
    );
  }

  /** connect-node's gRPC-Web answer: HTTP 200 without a length (chunked on HTTP/1.1), the status in the body. */
  #write(body: Uint8Array): void {
    // First, where the request guard's setHeader put it for connect-node's path.
    const out: OutgoingHttpHeaders = { "grpc-accept-encoding": this.engine.acceptEncodings };
    if (!this.ctx.headerTouched) Object.assign(out, initialHeaders.get(this.binary, this.compression));
    else this.ctx.responseHeader.forEach((value, key) => (out[key] = value));
    (this.res as ServerResponse).writeHead(200, out);
    this.endResponse(body);
  }
}

/** As Connect's gRPC-Web handler starts its context's responseHeader. */
const initialHeaders = new CodecMemo<Readonly<Record<string, string>>>((binary, compression) =>
  Object.freeze({
    "content-type": binary ? contentTypeProto : contentTypeJson,
    ...(compression && { "grpc-encoding": compression.name }),
  }),
);
