import assert from "node:assert/strict";
import { fork, type ChildProcess } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { NameSchema, type Name } from "../gen/route_guide_pb.js";
import { createRouteGuideClient, type ClientOptions, type RouteGuideClient } from "../src/client/client.js";

// Many clients at once, on loopback, for a fixed amount of work: every
// protocol and HTTP version, unary calls and bidi streams side by side.
// Zero failed calls, and the server's memory (its own process, after a
// forced GC) back near where it started. SOAK_SCALE multiplies the work
// (npm run soak); the default is sized for CI (a few seconds on 2 cores).

const scale = Number(process.env.SOAK_SCALE ?? 1);
const unaryPerClient = 600 * scale;
const unaryInFlight = 32;
const streamsPerClient = 10;
const namesPerStream = 100 * scale;
/**
 * The bounds, stated: after a forced GC, the heap in use may end at most
 * this much above where it started, and RSS (pages the allocators keep) at
 * most this. Measured here: heap within ±1 MiB, RSS within ~15 MiB per
 * round for three rounds, then flat.
 */
const heapBoundMiB = 8;
const rssBoundMiB = 64;

let server: ChildProcess;
let url: string;

before(async () => {
  server = fork(new URL("./support/soak-server.ts", import.meta.url), { execArgv: ["--import", "tsx"], stdio: ["ignore", "inherit", "inherit", "ipc"] });
  url = await new Promise<string>((resolve) => server.once("message", (m: { url: string }) => resolve(m.url)));
});
after(() => {
  if (server.exitCode === null) server.kill("SIGKILL");
});

function measure(): Promise<NodeJS.MemoryUsage> {
  return new Promise((resolve) => {
    server.once("message", (m: { memory: NodeJS.MemoryUsage }) => resolve(m.memory));
    server.send("measure");
  });
}

const unaryClients: Array<Omit<ClientOptions, "baseUrl">> = [
  { protocol: "grpc" },
  { protocol: "grpc", json: true },
  { protocol: "connect", httpVersion: "2" },
  { protocol: "connect", httpVersion: "1.1", json: true },
  { protocol: "grpc-web", httpVersion: "2" },
  { protocol: "grpc-web", httpVersion: "1.1" },
];
const streamClients: Array<Omit<ClientOptions, "baseUrl">> = [
  { protocol: "grpc" },
  { protocol: "connect", httpVersion: "2" },
  { protocol: "grpc-web", httpVersion: "2" },
];
const label = (o: Omit<ClientOptions, "baseUrl">) => `${o.protocol}${o.json ? "+json" : ""} HTTP/${o.httpVersion ?? "2"}`;

const expectedCity: Record<string, string> = { Alice: "New York", Bob: "Los Angeles" };

async function unaryCalls(client: RouteGuideClient, count: number, failures: string[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const name = next++ % 2 === 0 ? "Alice" : "Bob";
      try {
        const person = await client.getPerson({ name });
        if (person.address?.city !== expectedCity[name]) failures.push(`wrong answer for ${name}`);
      } catch (err) {
        failures.push(String(err));
      }
    }
  };
  await Promise.all(Array.from({ length: unaryInFlight }, worker));
}

async function stream(client: RouteGuideClient, count: number, failures: string[]): Promise<void> {
  async function* names(): AsyncIterable<Name> {
    for (let i = 0; i < count; i++) yield create(NameSchema, { name: i % 2 === 0 ? "Alice" : "Bob" });
  }
  let received = 0;
  try {
    for await (const person of client.getPeople(names())) {
      if (person.name !== (received++ % 2 === 0 ? "Alice" : "Bob")) failures.push("stream answered out of order");
    }
    if (received !== count) failures.push(`stream got ${received} of ${count}`);
  } catch (err) {
    failures.push(String(err));
  }
}

/** Every client at once: unary calls `unary` times per client, and streams of `names` names. */
async function load(unary: number, names: number, failures: string[]): Promise<void> {
  await Promise.all([
    ...unaryClients.map((o) => unaryCalls(createRouteGuideClient({ baseUrl: url, ...o }), unary, failures)),
    ...streamClients.flatMap((o) => {
      const client = createRouteGuideClient({ baseUrl: url, ...o });
      return Array.from({ length: streamsPerClient }, () => stream(client, names, failures));
    }),
  ]);
}

describe("soak", () => {
  it(`${unaryClients.length} unary clients × ${unaryPerClient} calls and ${streamClients.length * streamsPerClient} streams × ${namesPerStream} names, at once`, { timeout: 600_000 * scale }, async () => {
    // Warm-up, one round of the same load: the code paths, caches, pools and
    // the heap's spaces grow to their working size (V8 keeps ~150 MiB
    // committed under this load, with ~18 MiB in use); then the baseline.
    const warm: string[] = [];
    await load(unaryPerClient, namesPerStream, warm);
    assert.deepEqual(warm, []);
    const before = await measure();

    const failures: string[] = [];
    const started = performance.now();
    await load(unaryPerClient, namesPerStream, failures);
    const seconds = (performance.now() - started) / 1000;
    const calls = unaryClients.length * unaryPerClient;

    // The clients' connections idle out or stay; either way their calls are over.
    await new Promise((resolve) => setTimeout(resolve, 500));
    const afterRun = await measure();
    const mib = (n: number) => n / 2 ** 20;
    const heapGrowth = mib(afterRun.heapUsed - before.heapUsed);
    const rssGrowth = mib(afterRun.rss - before.rss);
    console.log(
      `soak: ${calls} unary calls (${unaryClients.map(label).join(", ")}) and ` +
        `${streamClients.length * streamsPerClient} streams of ${namesPerStream} names (${streamClients.map(label).join(", ")}) ` +
        `in ${seconds.toFixed(1)} s: ${failures.length} failed; server heap ${mib(before.heapUsed).toFixed(1)} → ` +
        `${mib(afterRun.heapUsed).toFixed(1)} MiB (bound +${heapBoundMiB}), RSS ${mib(before.rss).toFixed(0)} → ` +
        `${mib(afterRun.rss).toFixed(0)} MiB (bound +${rssBoundMiB})`,
    );
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed calls`);
    assert.ok(heapGrowth < heapBoundMiB, `server heap grew ${heapGrowth.toFixed(1)} MiB`);
    assert.ok(rssGrowth < rssBoundMiB, `server RSS grew ${rssGrowth.toFixed(0)} MiB`);
  });
});
