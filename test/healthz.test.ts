import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { startTestServer, type RunningServer } from "./support/server.js";

let server: RunningServer;
before(async () => (server = await startTestServer()));
after(() => server.close());

describe("health over the real port", () => {
  it("reports SERVING for the server and RouteGuide once started, over gRPC and GET /healthz", async () => {
    const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
    assert.equal((await health.check({ service: "" })).status, ServingStatus.SERVING);
    assert.equal((await health.check({ service: "RouteGuide" })).status, ServingStatus.SERVING);
    const res = await fetch(`${server.url}/healthz`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-store");
    assert.equal(await res.text(), "SERVING\n");
  });

  it("GET /healthz follows the health state: 503 once NOT_SERVING", async () => {
    server.health.setAll(ServingStatus.NOT_SERVING);
    try {
      const res = await fetch(`${server.url}/healthz`);
      assert.equal(res.status, 503);
      assert.equal(await res.text(), "NOT_SERVING\n");
      const health = createClient(Health, createGrpcTransport({ baseUrl: server.url }));
      assert.equal((await health.check({ service: "RouteGuide" })).status, ServingStatus.NOT_SERVING);
    } finally {
      server.health.setAll(ServingStatus.SERVING);
    }
  });

  it("GET /healthz refuses other methods with 405", async () => {
    const res = await fetch(`${server.url}/healthz`, { method: "POST" });
    assert.equal(res.status, 405);
  });
});
