import type { ConnectRouter } from "@connectrpc/connect";
import { RouteGuide } from "../gen/route_guide_pb.js";
import type { Directory } from "./directory.js";
import { createRouteGuideService } from "./service.js";

/** The one place where services are wired to the router. */
export function routes(directory: Directory) {
  return (router: ConnectRouter) => {
    router.service(RouteGuide, createRouteGuideService(directory));
  };
}
