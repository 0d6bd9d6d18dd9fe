import { createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { RouteGuide } from "../../gen/route_guide_pb.js";

export const protocols = ["grpc", "grpc-web", "connect"] as const;
export type Protocol = (typeof protocols)[number];

export interface ClientOptions {
  /** e.g. http://localhost:50051 */
  baseUrl: string;
  protocol: Protocol;
  /** JSON instead of binary protobuf on the wire. */
  json?: boolean;
  /** gRPC is always HTTP/2. Connect and gRPC-Web default to HTTP/2; unary calls also work over "1.1". */
  httpVersion?: "1.1" | "2";
}

export type RouteGuideClient = Client<typeof RouteGuide>;

/** The typed RouteGuide client over the chosen protocol: `await getPerson({name})`, `for await (… of getPeople(names))`. */
export function createRouteGuideClient(options: ClientOptions): RouteGuideClient {
  const common = { baseUrl: options.baseUrl, useBinaryFormat: !options.json };
  const httpVersion = options.httpVersion ?? "2";
  switch (options.protocol) {
    case "grpc":
      if (httpVersion !== "2") throw new Error("gRPC needs HTTP/2");
      return createClient(RouteGuide, createGrpcTransport(common));
    case "grpc-web":
      return createClient(RouteGuide, createGrpcWebTransport({ ...common, httpVersion }));
    case "connect":
      return createClient(RouteGuide, createConnectTransport({ ...common, httpVersion }));
  }
}
