// What the benchmark sends. Each workload is one kind of request and the tool
// that drives it; the same request bytes are first checked by hand (check.ts).
import { create, toBinary, toJsonString } from "@bufbuild/protobuf";
import { NameSchema } from "../gen/route_guide_pb.js";
import { envelope } from "./envelope.js";

/** What a peer serves; a workload runs on the peers that serve all it needs. */
export type Feature = "grpc" | "grpc-web" | "connect" | "http1" | "health";

export interface RequestSpec {
  method: "GET" | "POST";
  /** Path and query. */
  path: string;
  headers: Record<string, string>;
  body?: Buffer;
  /** How to read the answer when checking it. */
  answer: "grpc" | "grpc-web" | "connect-json";
}

interface Base {
  id: string;
  title: string;
  needs: Feature[];
}

export interface H2loadWorkload extends Base {
  tool: "h2load";
  request: RequestSpec;
  connections: number;
  streams: number;
  /** The figure this workload exists for: latency at 1×1, throughput otherwise. */
  focus: "latency" | "throughput";
}

export interface WrkWorkload extends Base {
  tool: "wrk";
  request: RequestSpec;
  connections: number;
}

export interface BidiWorkload extends Base {
  tool: "bidi";
}

export type Workload = H2loadWorkload | WrkWorkload | BidiWorkload;

const alice = create(NameSchema, { name: "Alice" });
const aliceJson = toJsonString(NameSchema, alice);

const grpcUnary: RequestSpec = {
  method: "POST",
  path: "/RouteGuide/GetPerson",
  headers: { "content-type": "application/grpc", te: "trailers" },
  body: envelope(toBinary(NameSchema, alice)),
  answer: "grpc",
};

/** grpc.health.v1.Health/Check for the server as a whole: a second unary method, of another service. */
const grpcHealth: RequestSpec = {
  method: "POST",
  path: "/grpc.health.v1.Health/Check",
  headers: { "content-type": "application/grpc", te: "trailers" },
  body: envelope(new Uint8Array(0)),
  answer: "grpc",
};

const connectJson: RequestSpec = {
  method: "POST",
  path: "/RouteGuide/GetPerson",
  headers: { "content-type": "application/json", "connect-protocol-version": "1" },
  body: Buffer.from(aliceJson),
  answer: "connect-json",
};

const connectGet: RequestSpec = {
  method: "GET",
  path: `/RouteGuide/GetPerson?connect=v1&encoding=json&message=${encodeURIComponent(aliceJson)}`,
  headers: {},
  answer: "connect-json",
};

const grpcWeb: RequestSpec = {
  method: "POST",
  path: "/RouteGuide/GetPerson",
  headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1" },
  body: envelope(toBinary(NameSchema, alice)),
  answer: "grpc-web",
};

export const workloads: Workload[] = [
  {
    id: "grpc-unary",
    title: "gRPC unary GetPerson, h2c, 8 connections × 32 streams (h2load)",
    needs: ["grpc"],
    tool: "h2load",
    request: grpcUnary,
    connections: 8,
    streams: 32,
    focus: "throughput",
  },
  {
    id: "grpc-health",
    title: "gRPC unary Health/Check, h2c, 8 connections × 32 streams (h2load)",
    needs: ["grpc", "health"],
    tool: "h2load",
    request: grpcHealth,
    connections: 8,
    streams: 32,
    focus: "throughput",
  },
  {
    id: "grpc-latency",
    title: "gRPC unary GetPerson, h2c, 1 connection × 1 stream (h2load)",
    needs: ["grpc"],
    tool: "h2load",
    request: grpcUnary,
    connections: 1,
    streams: 1,
    focus: "latency",
  },
  {
    id: "grpc-bidi",
    title: "gRPC bidi GetPeople, one stream (node:http2 client)",
    needs: ["grpc"],
    tool: "bidi",
  },
  {
    id: "connect-json-h1",
    title: "Connect JSON POST, HTTP/1.1, 64 connections (wrk)",
    needs: ["connect", "http1"],
    tool: "wrk",
    request: connectJson,
    connections: 64,
  },
  {
    id: "connect-json-h2",
    title: "Connect JSON POST, h2c, 8 connections × 32 streams (h2load)",
    needs: ["connect"],
    tool: "h2load",
    request: connectJson,
    connections: 8,
    streams: 32,
    focus: "throughput",
  },
  {
    id: "connect-get-h1",
    title: "Connect GET, HTTP/1.1, 64 connections (wrk)",
    needs: ["connect", "http1"],
    tool: "wrk",
    request: connectGet,
    connections: 64,
  },
  {
    id: "connect-get-h2",
    title: "Connect GET, h2c, 8 connections × 32 streams (h2load)",
    needs: ["connect"],
    tool: "h2load",
    request: connectGet,
    connections: 8,
    streams: 32,
    focus: "throughput",
  },
  {
    id: "grpc-web",
    title: "gRPC-Web binary POST, h2c, 8 connections × 32 streams (h2load)",
    needs: ["grpc-web"],
    tool: "h2load",
    request: grpcWeb,
    connections: 8,
    streams: 32,
    focus: "throughput",
  },
];
