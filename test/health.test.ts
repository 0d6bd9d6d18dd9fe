import assert from "node:assert/strict";
import { setImmediate } from "node:timers/promises";
import { describe, it } from "node:test";
import { Code, ConnectError, createClient, createRouterTransport } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "../gen/grpc/health/v1/health_pb.js";
import { HealthStatus, registerHealth } from "../src/grpc-services/health.js";

function setup(shutdownSignal?: AbortSignal) {
  const health = new HealthStatus();
  health.set("", ServingStatus.SERVING);
  health.set("RouteGuide", ServingStatus.SERVING);
  const transport = createRouterTransport((router) => registerHealth(router, health), {
    router: shutdownSignal ? { shutdownSignal } : {},
  });
  return { health, client: createClient(Health, transport) };
}

/** The server ends a Watch a few ticks after the client sees it end; wait for that, boundedly. */
async function untilNoWatchers(health: HealthStatus): Promise<void> {
  for (let tick = 0; tick < 1000 && health.subscriberCount > 0; tick++) await setImmediate();
  assert.equal(health.subscriberCount, 0, "a Watch call left its listener behind");
}

async function codeOf(promise: Promise<unknown>): Promise<Code> {
  const error = await promise.then(
    () => assert.fail("expected the call to fail"),
    (e: unknown) => e,
  );
  return ConnectError.from(error).code;
}

// A Watch that never ends would hang the run; make it a failure instead.
describe("grpc.health.v1.Health", { timeout: 10_000 }, () => {
  it("Check reports the overall status and RouteGuide's", async () => {
    const { client } = setup();
    assert.equal((await client.check({ service: "" })).status, ServingStatus.SERVING);
    assert.equal((await client.check({ service: "RouteGuide" })).status, ServingStatus.SERVING);
  });

  it("Check answers NOT_FOUND for an unknown service", async () => {
    const { client } = setup();
    assert.equal(await codeOf(client.check({ service: "NoSuchService" })), Code.NotFound);
  });

  it("Check reports NOT_SERVING after setAll, as at shutdown", async () => {
    const { health, client } = setup();
    health.setAll(ServingStatus.NOT_SERVING);
    assert.equal((await client.check({ service: "" })).status, ServingStatus.NOT_SERVING);
    assert.equal((await client.check({ service: "RouteGuide" })).status, ServingStatus.NOT_SERVING);
  });

  it("List returns every status", async () => {
    const { health, client } = setup();
    health.set("Other", ServingStatus.NOT_SERVING);
    const { statuses } = await client.list({});
    assert.deepEqual(
      Object.fromEntries(Object.entries(statuses).map(([name, response]) => [name, response.status])),
      { "": ServingStatus.SERVING, RouteGuide: ServingStatus.SERVING, Other: ServingStatus.NOT_SERVING },
    );
  });

  it("List refuses more than 100 services with RESOURCE_EXHAUSTED", async () => {
    const { health, client } = setup();
    for (let i = 0; i < 98; i++) health.set(`service-${i}`, ServingStatus.SERVING);
    assert.equal(Object.keys((await client.list({})).statuses).length, 100);
    health.set("one-too-many", ServingStatus.SERVING);
    assert.equal(await codeOf(client.list({})), Code.ResourceExhausted);
  });

  it("Watch sends the current status, then each change, and ends when the client aborts", async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const updates = client.watch({ service: "RouteGuide" }, { signal: abort.signal })[Symbol.asyncIterator]();

    assert.equal((await updates.next()).value?.status, ServingStatus.SERVING);
    health.set("RouteGuide", ServingStatus.NOT_SERVING);
    assert.equal((await updates.next()).value?.status, ServingStatus.NOT_SERVING);
    health.set("", ServingStatus.NOT_SERVING); // another service: no message
    health.set("RouteGuide", ServingStatus.SERVING);
    assert.equal((await updates.next()).value?.status, ServingStatus.SERVING);

    abort.abort();
    assert.equal(await codeOf(updates.next()), Code.Canceled);
    await untilNoWatchers(health);
  });

  it("Watch of an unknown service sends SERVICE_UNKNOWN and keeps watching", async () => {
    const { health, client } = setup();
    const abort = new AbortController();
    const updates = client.watch({ service: "Later" }, { signal: abort.signal })[Symbol.asyncIterator]();

    assert.equal((await updates.next()).value?.status, ServingStatus.SERVICE_UNKNOWN);
    health.set("Later", ServingStatus.SERVING);
    assert.equal((await updates.next()).value?.status, ServingStatus.SERVING);
    abort.abort();
    await untilNoWatchers(health);
  });

  it("Watch sends NOT_SERVING at shutdown, then ends with the shutdown's code", async () => {
    const shutdown = new AbortController();
    const { health, client } = setup(shutdown.signal);
    const updates = client.watch({ service: "" })[Symbol.asyncIterator]();

    assert.equal((await updates.next()).value?.status, ServingStatus.SERVING);
    health.setAll(ServingStatus.NOT_SERVING);
    assert.equal((await updates.next()).value?.status, ServingStatus.NOT_SERVING);
    // Nothing changes any more: only the shutdown signal can end the wait.
    const end = codeOf(updates.next());
    shutdown.abort(new ConnectError("server is shutting down", Code.Unavailable));
    assert.equal(await end, Code.Unavailable);
    await untilNoWatchers(health);
  });

  it("Watch ends at the call's deadline", async () => {
    const { health, client } = setup();
    const updates = client.watch({ service: "" }, { timeoutMs: 50 })[Symbol.asyncIterator]();

    assert.equal((await updates.next()).value?.status, ServingStatus.SERVING);
    assert.equal(await codeOf(updates.next()), Code.DeadlineExceeded);
    await untilNoWatchers(health);
  });
});
