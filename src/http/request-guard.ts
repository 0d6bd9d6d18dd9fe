import type { IncomingMessage, ServerResponse } from "node:http";
import type { Http2ServerRequest, Http2ServerResponse } from "node:http2";
import { base64Decode } from "@bufbuild/protobuf/wire";
import { Code, ConnectError } from "@connectrpc/connect";
import { parseTimeout as parseConnectTimeout } from "@connectrpc/connect/protocol-connect";
import { parseTimeout as parseGrpcTimeout } from "@connectrpc/connect/protocol-grpc";
import { compressedFlag } from "../engine/envelopes.js";
import { headerValue, pathOf } from "../engine/headers.js";
import { capDeadline } from "../transport/limits.js";

type Request = IncomingMessage | Http2ServerRequest;
type Response = ServerResponse | Http2ServerResponse;

/**
 * Checks for what connect-node 2.2 gets wrong with malformed requests, run
 * before it sees them. Returns false when it has answered the request itself.
 *
 * - No Host / :authority: connect-node throws synchronously from the request
 *   listener, which takes the whole process down.
 * - A Connect GET whose `message` is not base64: connect-node answers 500
 *   `internal`, as if the server were at fault; it is the client's error.
 * - Envelope flags a request may not carry (the end-of-stream flag 0x02,
 *   gRPC-Web's trailer flag 0x80, reserved bits): connect-node ignores them,
 *   and for Connect silently drops the message. They are framing errors.
 * - A deadline beyond what a Node timer can wait (2^31-1 ms, about 24.8
 *   days; gRPC allows up to 99,999,999 hours): Connect's timer fires after
 *   1 ms instead, so the call fails at once with DEADLINE_EXCEEDED.
 *   capDeadline cuts such deadlines, besides applying --max-deadline.
 * - gRPC (not gRPC-Web) over HTTP/1.x: it answers as if it were HTTP/2,
 *   with the status in trailers that HTTP/1.0 cannot carry at all and that
 *   HTTP/1.1 clients rarely read. gRPC requires HTTP/2; like grpc-go, say so.
 * - A request in an encoding it does not support: it answers UNIMPLEMENTED
 *   as it should, but drops the header that lists the encodings it does
 *   support (grpc-accept-encoding, ...) as "protocol metadata". Like
 *   grpc-go and connect-go, every RPC reply now names them.
 */
export interface RequestGuard {
  /** The checks: false when it has answered the request itself. */
  check(req: Request, res: Response): boolean;
  /**
   * For a request going on to connect-node, which reads the body by
   * iterating it: the iteration fails at a forbidden envelope flag, at the
   * deadline and at shutdown; and the reply names the accepted encodings.
   * The engine does both itself, with the same errors (src/engine/), so the
   * requests it takes skip this.
   */
  guardBody(req: Request, res: Response): void;
}

export function createRequestGuard(options: {
  maxDeadlineMs: number;
  acceptEncodings: string[];
  /** The RPCs' paths: gRPC over HTTP/1.x to any other path is left to be a 404. All paths when absent. */
  rpcPaths?: ReadonlySet<string>;
  /** The router's shutdownSignal: once it aborts, bodies still being read fail with its reason. */
  shutdownSignal?: AbortSignal;
}): RequestGuard {
  const accepted = options.acceptEncodings.join(",");
  const isRpc = (req: Request) => options.rpcPaths?.has(pathOf(req.url)) ?? true;
  return {
    check(req, res) {
      const authority = "authority" in req ? req.authority : req.headers.host;
      if (!authority) {
        reject(res, 400, "invalid_argument", "missing Host header (HTTP/1.1) or :authority (HTTP/2)");
        return false;
      }
      if (req.method === "GET" && !isGetMessageDecodable(req.url ?? "")) {
        reject(res, 400, "invalid_argument", "the message query parameter is not valid base64");
        return false;
      }
      const kind = kindOf(req);
      if (req.httpVersionMajor === 1 && kind === "grpc" && isRpc(req)) {
        reject(res, 505, "unimplemented", "gRPC requires HTTP/2 (h2c with prior knowledge, or TLS); over HTTP/1.1 use gRPC-Web or Connect");
        return false;
      }
      capDeadline(req.headers, options.maxDeadlineMs);
      if (kind === "connect-unary" && req.method === "GET" && isRpc(req)) {
        const { timeoutMs } = parseConnectTimeout(header(req, "connect-timeout-ms"), Number.MAX_SAFE_INTEGER);
        if (timeoutMs !== undefined && timeoutMs <= 0) {
          // A GET has no body to fail: answer as the body's reading fails for a POST.
          nameEncodings(res, kind, accepted);
          answerDeadlinePassed(res);
          return false;
        }
      }
      return true;
    },

    guardBody(req, res) {
      const kind = kindOf(req);
      nameEncodings(res, kind, accepted);
      let timeoutMs: number | undefined;
      if (kind === "grpc" || kind === "grpc-web") {
        checkEnvelopeFlags(req, Code.Internal);
        timeoutMs = parseGrpcTimeout(header(req, "grpc-timeout"), Number.MAX_SAFE_INTEGER).timeoutMs;
      } else if (kind === "connect-stream") {
        checkEnvelopeFlags(req, Code.InvalidArgument);
        timeoutMs = parseConnectTimeout(header(req, "connect-timeout-ms"), Number.MAX_SAFE_INTEGER).timeoutMs;
      } else if (kind === "connect-unary") {
        timeoutMs = parseConnectTimeout(header(req, "connect-timeout-ms"), Number.MAX_SAFE_INTEGER).timeoutMs;
      }
      if (isRpc(req) && (timeoutMs !== undefined || options.shutdownSignal !== undefined)) endBody(req, res, timeoutMs, options.shutdownSignal);
    },
  };
}

/**
 * The header naming the encodings the server accepts, on every reply of the
 * protocol. The engine writes it with its own headers (acceptEncodings):
 * set here, it would send every header of the engine's writeHead through setHeader.
 */
function nameEncodings(res: Response, kind: ReturnType<typeof kindOf>, accepted: string): void {
  if (kind === "grpc" || kind === "grpc-web") res.setHeader("grpc-accept-encoding", accepted);
  else if (kind === "connect-stream") res.setHeader("connect-accept-encoding", accepted);
  else if (kind === "connect-unary") res.setHeader("accept-encoding", accepted);
}

/** Which protocol a request's content type (or a GET's query) names, as connect-node tells them apart. */
function kindOf(req: Request): "grpc" | "grpc-web" | "connect-stream" | "connect-unary" | undefined {
  const contentType = req.headers["content-type"] ?? "";
  if (/^application\/grpc(\+|;|$)/.test(contentType)) return "grpc";
  if (/^application\/grpc-web(\+|;|$)/.test(contentType)) return "grpc-web";
  if (contentType.startsWith("application/connect+")) return "connect-stream";
  if (/^application\/(json|proto)(;|$)/.test(contentType) || (req.method === "GET" && /[?&]encoding=/.test(req.url ?? ""))) return "connect-unary";
  return undefined;
}

function isGetMessageDecodable(url: string): boolean {
  const query = new URLSearchParams(url.slice(url.indexOf("?") + 1));
  if (query.get("base64") !== "1") return true;
  try {
    base64Decode(query.get("message") ?? "");
    return true;
  } catch {
    return false;
  }
}

/** Connect's error shape; for HTTP/1.1 the connection closes too, since the body may be unread. */
function reject(res: Response, status: number, code: string, message: string): void {
  const body = JSON.stringify({ code, message });
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
  };
  if (res.req.httpVersionMajor === 1) headers.connection = "close";
  (res as ServerResponse).writeHead(status, headers);
  res.end(body);
}

function header(req: Request, name: string): string | null {
  return headerValue(req.headers[name]);
}

/**
 * connect-node reads a request's body without regard to its deadline or
 * shutdown (connect-es 2.2): a deadline already passed was answered only
 * after the body arrived (its error, if broken, winning), a unary call whose
 * body never ends was never answered, and a streaming handler waiting for
 * the next message was not woken at the deadline or at shutdown (services
 * had to race their input against ctx.signal). The body's reading fails
 * with DEADLINE_EXCEEDED at the deadline instead, at once when it has
 * passed, and with the shutdown's reason when that comes, so every call
 * ends by them, as it does on the engine.
 */
function endBody(req: Request, res: Response, timeoutMs: number | undefined, shutdown: AbortSignal | undefined): void {
  const inner = (req as unknown as AsyncIterable<Buffer>)[Symbol.asyncIterator].bind(req);
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: async function* (): AsyncGenerator<Buffer> {
      if (timeoutMs !== undefined && timeoutMs <= 0) throw deadlineExceeded();
      if (shutdown?.aborted) throw ConnectError.from(shutdown.reason);
      const it = inner();
      let timer: NodeJS.Timeout | undefined;
      let onShutdown: (() => void) | undefined;
      const ended = new Promise<never>((_, reject) => {
        if (timeoutMs !== undefined) timer = setTimeout(() => reject(deadlineExceeded()), timeoutMs);
        onShutdown = () => reject(ConnectError.from(shutdown!.reason));
        shutdown?.addEventListener("abort", onShutdown, { once: true });
      });
      ended.catch(() => {}); // the body may end first
      // connect-node may stop reading half-way and never finish this generator: the response's end cleans up too.
      const cleanUp = () => {
        clearTimeout(timer);
        shutdown?.removeEventListener("abort", onShutdown!);
      };
      res.once("close", cleanUp);
      try {
        for (;;) {
          const result = await Promise.race([it.next(), ended]);
          if (result.done === true) return;
          yield result.value;
        }
      } finally {
        cleanUp();
        res.off("close", cleanUp);
        void it.return?.(undefined)?.catch?.(() => {});
      }
    },
  });
}

function deadlineExceeded(): ConnectError {
  return new ConnectError("the operation timed out", Code.DeadlineExceeded);
}

/** Connect's unary error for a deadline already passed (504), as the engine answers a GET. */
function answerDeadlinePassed(res: Response): void {
  const body = JSON.stringify({ code: "deadline_exceeded", message: "the operation timed out" });
  (res as ServerResponse).writeHead(504, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}


/**
 * Scans the envelope headers of the request body as connect-node reads it
 * (`for await (… of req)`, the iteration replaced here), and fails the read
 * at the first envelope with a flag other than "compressed". gRPC
 * implementations answer INTERNAL for those (grpc-go: "unexpected payload
 * format", grpc-java: "reserved bits not zero"); Connect classes framing
 * errors as INVALID_ARGUMENT.
 */
function checkEnvelopeFlags(req: Request, code: Code): void {
  Object.defineProperty(req, Symbol.asyncIterator, {
    configurable: true,
    value: async function* (): AsyncGenerator<Buffer> {
      let payloadLeft = 0;
      const header = Buffer.alloc(5);
      let headerFilled = 0;
      // Readable's own iteration, which the property defined here now hides.
      for await (const chunk of req.iterator() as AsyncIterable<Buffer>) {
        let offset = 0;
        while (offset < chunk.length) {
          if (payloadLeft > 0) {
            const skipped = Math.min(payloadLeft, chunk.length - offset);
            payloadLeft -= skipped;
            offset += skipped;
            continue;
          }
          header[headerFilled++] = chunk[offset++]!;
          if (headerFilled < header.length) continue;
          headerFilled = 0;
          const flags = header[0]!;
          if ((flags & ~compressedFlag) !== 0) {
            throw new ConnectError(`protocol error: invalid request envelope flags 0x${flags.toString(16).padStart(2, "0")}`, code);
          }
          payloadLeft = header.readUInt32BE(1);
        }
        yield chunk;
      }
      // connect-es 2.2's envelope reader forgets a header it has consumed: a body that ends right
      // after one got "missing input message" (OK after a valid message) instead of this.
      if (headerFilled > 0 || payloadLeft > 0) throw new ConnectError("protocol error: incomplete envelope", Code.InvalidArgument);
    },
  });
}
