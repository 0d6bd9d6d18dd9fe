import { gzipSync } from "node:zlib";
import { create, type MessageInitShape, toBinary, toJsonString } from "@bufbuild/protobuf";
import { type ExerciseRequest, ExerciseRequestSchema, ExerciseService } from "../../gen/exercise/v1/exercise_pb.js";
import type { RawRequest, Step } from "./differential.js";
import { envelope } from "./raw.js";

/**
 * Raw requests to ExerciseService in every protocol × codec × HTTP version
 * the protocols allow, so one case can be written once and sent in each.
 */

export type Protocol = "grpc" | "grpc-web" | "connect" | "connect-get";

export interface Variant {
  /** e.g. "gRPC-Web +json over HTTP/1.1". */
  name: string;
  protocol: Protocol;
  codec: "proto" | "json";
  http: "1.1" | "2";
  contentType: string;
  /** Connect unary (POST and GET) has no envelopes: the body is the message. */
  streaming: boolean;
}

function variant(protocol: Protocol, codec: Variant["codec"], http: Variant["http"], contentType: string): Variant {
  const label = { grpc: "gRPC", "grpc-web": "gRPC-Web", connect: "Connect", "connect-get": "Connect GET" }[protocol];
  return { name: `${label} ${contentType} over HTTP/${http}`, protocol, codec, http, contentType, streaming: protocol === "grpc" || protocol === "grpc-web" };
}

/** Every combination the protocols allow (gRPC needs HTTP/2; Connect streams are for methods that stream). */
export const unaryVariants: Variant[] = [
  variant("grpc", "proto", "2", "application/grpc"),
  variant("grpc", "proto", "2", "application/grpc+proto"),
  variant("grpc", "json", "2", "application/grpc+json"),
  ...(["1.1", "2"] as const).flatMap((http) => [
    variant("grpc-web", "proto", http, "application/grpc-web+proto"),
    variant("grpc-web", "json", http, "application/grpc-web+json"),
    variant("connect", "proto", http, "application/proto"),
    variant("connect", "json", http, "application/json"),
  ]),
];

/** Connect GET, for the NO_SIDE_EFFECTS method (Query) only; the codec is the `encoding` parameter. */
export const getVariants: Variant[] = (["1.1", "2"] as const).flatMap((http) => [
  variant("connect-get", "proto", http, "proto"),
  variant("connect-get", "json", http, "json"),
]);

/** Streaming methods: gRPC and gRPC-Web as for unary, Connect with its streaming content types. */
export const streamVariants: Variant[] = [
  ...unaryVariants.filter((v) => v.protocol !== "connect"),
  ...(["1.1", "2"] as const).flatMap((http) => [
    { ...variant("connect", "proto", http, "application/connect+proto"), streaming: true },
    { ...variant("connect", "json", http, "application/connect+json"), streaming: true },
  ]),
];

export type MethodName = "Unary" | "Query" | "ServerStream" | "ClientStream" | "Bidi";
export type ExerciseInit = MessageInitShape<typeof ExerciseRequestSchema>;

export const exercisePath = (method: MethodName) => `/${ExerciseService.typeName}/${method}`;

/** The message as the variant's codec writes it. */
export function messageBytes(v: Variant, message: ExerciseInit): Buffer {
  const value: ExerciseRequest = create(ExerciseRequestSchema, message);
  return Buffer.from(v.codec === "json" ? toJsonString(ExerciseRequestSchema, value) : toBinary(ExerciseRequestSchema, value));
}

export interface CallOptions {
  /** gzip the request (gRPC and Connect streams per message, Connect unary the body, GET the query message). */
  gzip?: boolean;
  /** Accept gzip responses in the protocol's header. */
  acceptGzip?: boolean;
  /** The deadline header's value in milliseconds, as the protocol writes it: grpc-timeout "<n>m", connect-timeout-ms "<n>". */
  deadlineMs?: number;
  headers?: Array<[string, string]>;
  /** Leave the request body open (no "end"). */
  open?: boolean;
}

/** A call to `method` with `messages` as the variant sends it: headers, then the messages, then the end. */
export function call(v: Variant, method: MethodName, messages: ExerciseInit[], options: CallOptions = {}): RawRequest {
  const headers = [...protocolHeaders(v, options), ...(options.headers ?? [])];
  const path = exercisePath(method);
  if (v.protocol === "connect-get") {
    const bytes = messageBytes(v, messages[0] ?? {});
    const query = new URLSearchParams({ connect: "v1", encoding: v.contentType });
    if (options.gzip) query.set("compression", "gzip");
    const encoded = options.gzip ? gzipSync(bytes) : bytes;
    if (v.codec === "json" && !options.gzip) query.set("message", encoded.toString());
    else {
      query.set("base64", "1");
      query.set("message", encoded.toString("base64url"));
    }
    return { http: v.http, method: "GET", path: `${path}?${query}`, headers, steps: ["end"] };
  }
  return { http: v.http, path, headers, steps: [...messages.map((m) => frame(v, messageBytes(v, m), options.gzip)), ...(options.open ? [] : ["end" as const])] };
}

/** One message as it goes on the wire: an envelope (compressed or not), or the body of a Connect unary call. */
export function frame(v: Variant, bytes: Buffer, gzip = false): Step {
  if (!v.streaming) return gzip ? gzipSync(bytes) : bytes;
  return gzip ? envelope(1, gzipSync(bytes)) : envelope(0, bytes);
}

function protocolHeaders(v: Variant, { gzip, acceptGzip, deadlineMs }: CallOptions): Array<[string, string]> {
  const headers: Array<[string, string]> = [];
  if (v.protocol !== "connect-get") headers.push(["content-type", v.contentType]);
  if (v.protocol === "grpc") headers.push(["te", "trailers"]);
  if (v.protocol === "grpc-web") headers.push(["x-grpc-web", "1"]);
  if (v.protocol === "connect") headers.push(["connect-protocol-version", "1"]);
  const grpcLike = v.protocol === "grpc" || v.protocol === "grpc-web";
  if (gzip && v.protocol !== "connect-get") headers.push([grpcLike ? "grpc-encoding" : v.streaming ? "connect-content-encoding" : "content-encoding", "gzip"]);
  if (acceptGzip) headers.push([grpcLike ? "grpc-accept-encoding" : v.streaming ? "connect-accept-encoding" : "accept-encoding", "gzip"]);
  if (deadlineMs !== undefined) headers.push(grpcLike ? ["grpc-timeout", `${deadlineMs}m`] : ["connect-timeout-ms", String(deadlineMs)]);
  return headers;
}
