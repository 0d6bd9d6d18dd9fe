import type { ConnectRouter } from "@connectrpc/connect";
import { file_grpc_health_v1_health } from "../gen/grpc/health/v1/health_pb.js";
import { RouteGuide, file_route_guide } from "../gen/route_guide_pb.js";
import type { Directory } from "./routeguide/directory.js";
import { type HealthStatus, registerHealth } from "./grpc-services/health.js";
import { registerReflection } from "./grpc-services/reflection.js";
import { createRouteGuideService } from "./routeguide/service.js";

/** The one place where services are wired to the router: RouteGuide, health checks, reflection. */
export function routes(directory: Directory, health: HealthStatus) {
  return (router: ConnectRouter) => {
    router.service(RouteGuide, createRouteGuideService(directory));
    registerHealth(router, health);
    registerReflection(router, [file_route_guide, file_grpc_health_v1_health]);
  };
}
