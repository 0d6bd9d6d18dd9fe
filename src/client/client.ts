import { getCACertificates } from "node:tls";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { RouteGuide } from "../../gen/route_guide_pb.js";
import { traceContextInterceptor } from "./tracing.js";

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
  /** PEM certificates of CAs to trust for https:// besides Node's own (and NODE_EXTRA_CA_CERTS), e.g. a private CA's. */
  ca?: string;
}

export type RouteGuideClient = Client<typeof RouteGuide>;

/** The typed RouteGuide client over the chosen protocol: `await getPerson({name})`, `for await (… of getPeople(names))`. */
export function createRouteGuideClient(options: ClientOptions): RouteGuideClient {
  // Every call carries the caller's trace context (traceparent) when an OpenTelemetry SDK is registered.
  const common = { baseUrl: options.baseUrl, useBinaryFormat: !options.json, interceptors: [traceContextInterceptor, tlsFailuresAreUnavailable] };
  const httpVersion = options.httpVersion ?? "2";
  // Node's `ca` replaces its trusted CAs: keep them, and add the caller's.
  const tls = options.ca === undefined ? {} : { nodeOptions: { ca: [...getCACertificates("default"), options.ca] } };
  switch (options.protocol) {
    case "grpc":
      if (httpVersion !== "2") throw new Error("gRPC needs HTTP/2");
      return createClient(RouteGuide, createGrpcTransport({ ...common, ...tls }));
    case "grpc-web":
      return createClient(RouteGuide, createGrpcWebTransport({ ...common, ...tls, httpVersion }));
    case "connect":
      return createClient(RouteGuide, createConnectTransport({ ...common, ...tls, httpVersion }));
  }
}

/**
 * connect-node reports a failed TLS handshake or an untrusted certificate as
 * INTERNAL with OpenSSL's words; to the caller it is a server it cannot reach
 * safely, like a refused connection: UNAVAILABLE, saying what to do.
 */
const tlsFailuresAreUnavailable: Interceptor = (next) => async (req) => {
  try {
    return await next(req);
  } catch (err) {
    throw tlsFailure(err) ?? err;
  }
};

function tlsFailure(err: unknown): ConnectError | undefined {
  if (!(err instanceof ConnectError) || err.code !== Code.Internal) return undefined;
  const cause = err.cause as (Error & { code?: unknown }) | undefined;
  const code = typeof cause?.code === "string" ? cause.code : "";
  // OpenSSL's reason alone ("wrong version number"), and Node's own words up to its hint about --use-system-ca.
  const reason = (cause as { reason?: string } | undefined)?.reason ?? cause?.message.split(";")[0];
  // OpenSSL's verification results (node:tls passes them on as codes), and Node's check of the name in the certificate.
  if (/CERT|UNABLE_TO_|SELF_SIGNED/.test(code)) {
    return new ConnectError(
      `cannot verify the server's TLS certificate (${reason}): trust the CA that signed it with NODE_EXTRA_CA_CERTS=FILE (or the CLI's --ca FILE)`,
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    );
  }
  if (code.startsWith("ERR_SSL_") || code === "EPROTO") {
    return new ConnectError(
      `TLS handshake with the server failed (${reason}): does it serve TLS on this port?`,
      Code.Unavailable,
      undefined,
      undefined,
      cause,
    );
  }
  return undefined;
}
