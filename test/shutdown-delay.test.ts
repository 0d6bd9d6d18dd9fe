// --shutdown-delay on the real process: after SIGTERM, readiness says
// NOT_SERVING at once while calls, on new connections too, are still served;
// then the usual graceful close, and exit 0.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { createRouteGuideClient } from "../src/client/client.js";
import { startServerProcess } from "./support/server-process.js";

describe("--shutdown-delay", () => {
  it("turns readiness NOT_SERVING on SIGTERM, goes on serving new connections for the delay, then closes and exits 0", { timeout: 30_000 }, async () => {
    const server = await startServerProcess(["--host", "127.0.0.1", "--port", "0", "--log-level", "warn", "--shutdown-delay", "3s"]);
    const url = `http://127.0.0.1:${server.port}`;
    assert.equal((await fetch(`${url}/healthz`)).status, 200);

    server.child.kill("SIGTERM");
    let healthz: Response;
    for (let i = 0; (healthz = await fetch(`${url}/healthz`)).status === 200; i++) {
      assert.ok(i < 500, "/healthz still says 200 long after SIGTERM");
      await sleep(10);
    }
    assert.equal(healthz.status, 503);
    assert.equal(await healthz.text(), "NOT_SERVING\n");
    // Each client below opens its own connection: the port still accepts during the delay.
    const health = createClient(Health, createGrpcTransport({ baseUrl: url }));
    assert.equal((await health.check({})).status, ServingStatus.NOT_SERVING);
    const grpc = createRouteGuideClient({ baseUrl: url, protocol: "grpc" });
    assert.equal((await grpc.getPerson({ name: "Alice" })).name, "Alice");
    const connect = createRouteGuideClient({ baseUrl: url, protocol: "connect", httpVersion: "1.1" });
    assert.equal((await connect.getPerson({ name: "Bob" })).name, "Bob");
    assert.equal(server.child.exitCode, null, "still running within the delay");

    assert.equal(await server.exited, 0);
    await assert.rejects(fetch(`${url}/healthz`));
  });
});
