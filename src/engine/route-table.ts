import type { DescMethod, DescService } from "@bufbuild/protobuf";
import {
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createMethodImplSpec,
  createServiceImplSpec,
  type MethodImplSpec,
} from "@connectrpc/connect";
import type { UniversalHandler } from "@connectrpc/connect/protocol";

/** A method the engine may serve: its implementation as the router holds it. */
export interface RoutedMethod {
  readonly requestPath: string;
  readonly method: DescMethod;
  readonly spec: MethodImplSpec;
}

/**
 * The router, built once, and what every consumer reads from it: the HTTP
 * handler and the request guard (paths, which need HTTP/2), observability
 * (one channel per method) and the engine (the implementations). connect-es
 * lists a router's handlers but not the implementations behind them, so
 * they are captured as `routes` registers them.
 */
export interface RouteTable {
  readonly router: ConnectRouter;
  /** Connect's handler for each RPC path: connect-node's general path. */
  readonly handlers: ReadonlyMap<string, UniversalHandler>;
  /**
   * The implementations the engine may call, by path. Methods registered with
   * options of their own (interceptors, protocols per service) are absent:
   * connect-node applies those, so their calls go there.
   */
  readonly implementations: ReadonlyMap<string, RoutedMethod>;
  /** Paths whose requests stream (client or bidi): they need HTTP/2, which browsers and plain curl lack. */
  readonly needsHttp2: ReadonlySet<string>;
}

export function createRouteTable(routes: (router: ConnectRouter) => void, options: ConnectRouterOptions): RouteTable {
  const router = createConnectRouter(options);
  const implementations = new Map<string, RoutedMethod>();
  const add = (spec: MethodImplSpec) => {
    const requestPath = `/${spec.method.parent.typeName}/${spec.method.name}`;
    implementations.set(requestPath, { requestPath, method: spec.method, spec });
  };
  const capturing: ConnectRouter = {
    get handlers() {
      return router.handlers;
    },
    service(service: DescService, impl: never, opts?: never) {
      router.service(service, impl, opts);
      if (opts === undefined) for (const spec of Object.values(createServiceImplSpec(service, impl).methods)) add(spec);
      return capturing;
    },
    rpc(method: DescMethod, impl: never, opts?: never) {
      router.rpc(method as never, impl, opts);
      if (opts === undefined) add(createMethodImplSpec(method as never, impl) as MethodImplSpec);
      return capturing;
    },
  } as ConnectRouter;
  routes(capturing);
  const handlers = new Map(router.handlers.map((h) => [h.requestPath, h]));
  const needsHttp2 = new Set(
    router.handlers
      .filter((h) => h.method.methodKind === "bidi_streaming" || h.method.methodKind === "client_streaming")
      .map((h) => h.requestPath),
  );
  return { router, handlers, implementations, needsHttp2 };
}
