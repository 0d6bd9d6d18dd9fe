// h2load and wrk only see HTTP statuses, and a gRPC error is an HTTP 200, so
// every workload's exact request is first sent once here and its answer read.
import http from "node:http";
import http2 from "node:http2";
import { once } from "node:events";
import { fromBinary, fromJsonString } from "@bufbuild/protobuf";
import { HealthCheckResponse_ServingStatus, HealthCheckResponseSchema } from "../gen/grpc/health/v1/health_pb.js";
import { PersonSchema, type Person } from "../gen/person_pb.js";
import { EnvelopeReader } from "./envelope.js";
import type { RequestSpec } from "./workloads.js";

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  trailers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

const timeoutMs = 10_000;

/** Sends the request once; resolves to undefined when the answer is the one expected (Alice, or SERVING), else to what was wrong. */
export async function checkRequest(baseUrl: string, request: RequestSpec, httpVersion: "1.1" | "2"): Promise<string | undefined> {
  try {
    const answer = await (httpVersion === "2" ? send2(baseUrl, request) : send1(baseUrl, request));
    return readReply(request, answer);
  } catch (err) {
    return (err as Error).message;
  }
}

function readReply(request: RequestSpec, { status, headers, trailers, body }: Answer): string | undefined {
  const kind = request.answer;
  if (status !== 200) return `HTTP ${status}: ${body.toString("utf8", 0, 200)}`;
  const contentType = String(headers["content-type"]);
  if (kind === "connect-json") {
    if (!contentType.startsWith("application/json")) return `content-type ${contentType}`;
    return checkAlice(fromJsonString(PersonSchema, body.toString("utf8")));
  } else {
    const messages: [number, Buffer][] = [];
    new EnvelopeReader((flags, message) => messages.push([flags, Buffer.from(message)])).push(body);
    let grpcStatus = headers["grpc-status"] ?? trailers["grpc-status"];
    let grpcMessage = headers["grpc-message"] ?? trailers["grpc-message"];
    if (kind === "grpc-web") {
      if (!contentType.startsWith("application/grpc-web")) return `content-type ${contentType}`;
      // gRPC-Web puts the trailers in the body, in a frame flagged 0x80.
      const trailer = messages.find(([flags]) => flags === 0x80)?.[1].toString("latin1") ?? "";
      grpcStatus ??= /^grpc-status:\s*(\d+)/im.exec(trailer)?.[1];
      grpcMessage ??= /^grpc-message:\s*(.*?)\s*$/im.exec(trailer)?.[1];
    } else if (!contentType.startsWith("application/grpc")) {
      return `content-type ${contentType}`;
    }
    if (grpcStatus !== "0") return `grpc-status ${grpcStatus}: ${decodeURIComponent(String(grpcMessage ?? ""))}`;
    const data = messages.filter(([flags]) => flags === 0);
    if (data.length !== 1) return `${data.length} response messages`;
    if (request.path.startsWith("/grpc.health.v1.Health/")) {
      const health = fromBinary(HealthCheckResponseSchema, data[0]![1]);
      return health.status === HealthCheckResponse_ServingStatus.SERVING ? undefined : `health status ${health.status}`;
    }
    return checkAlice(fromBinary(PersonSchema, data[0]![1]));
  }
}

function checkAlice(person: Person): string | undefined {
  if (person.name !== "Alice" || person.age !== 30 || person.address?.city !== "New York") {
    return `unexpected person ${JSON.stringify(person)}`;
  }
  return undefined;
}

async function send2(baseUrl: string, request: RequestSpec): Promise<Answer> {
  const session = http2.connect(baseUrl);
  session.on("error", () => {}); // surfaces through the stream
  try {
    const stream = session.request({ ":method": request.method, ":path": request.path, ...request.headers });
    stream.setTimeout(timeoutMs, () => stream.close(http2.constants.NGHTTP2_CANCEL));
    const chunks: Buffer[] = [];
    let headers: Answer["headers"] = {};
    let trailers: Answer["trailers"] = {};
    stream.on("response", (h) => (headers = h));
    stream.on("trailers", (t) => (trailers = t));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    const done = Promise.race([
      once(stream, "end"),
      once(stream, "error").then(([err]) => Promise.reject(err as Error)),
    ]);
    stream.end(request.body);
    await done;
    return { status: Number(headers[":status"]), headers, trailers, body: Buffer.concat(chunks) };
  } finally {
    session.destroy();
  }
}

async function send1(baseUrl: string, request: RequestSpec): Promise<Answer> {
  const req = http.request(baseUrl + request.path, {
    method: request.method,
    headers: request.headers,
    agent: false,
    timeout: timeoutMs,
  });
  req.on("timeout", () => req.destroy(new Error("timed out")));
  req.end(request.body);
  const [res] = (await once(req, "response")) as [http.IncomingMessage];
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return { status: res.statusCode ?? 0, headers: res.headers, trailers: res.trailers, body: Buffer.concat(chunks) };
}
