import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { PersonSchema } from "../gen/person_pb.js";
import { NameSchema, RouteGuide, type Name } from "../gen/route_guide_pb.js";
import { createRouteGuideClient, type ClientOptions } from "../src/client/client.js";
import { ConfigError, parseConfig, type LogLevel } from "../src/config.js";
import { createHttpHandler } from "../src/http/handler.js";
import { createLogger, infoLineWriter } from "../src/observability/logging.js";
import { Observability, recordingInterceptor } from "../src/observability/calls.js";
import { createRouteTable } from "../src/engine/route-table.js";
import { LogLines } from "./support/logs.js";
import { envelope, grpcStatus, h2Request } from "./support/raw.js";
import { startLoggedServer, type LoggedServer, type RunningServer } from "./support/server.js";

function start(level: LogLevel): Promise<LoggedServer> {
  return startLoggedServer({}, { level });
}

async function* names(...list: string[]): AsyncIterable<Name> {
  for (const name of list) yield create(NameSchema, { name });
}

async function getPeople(options: ClientOptions, ...list: string[]): Promise<string[]> {
  const got: string[] = [];
  for await (const p of createRouteGuideClient(options).getPeople(names(...list))) got.push(p.name);
  return got;
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

async function scrape(baseUrl: string): Promise<{ contentType: string | null; samples: Sample[] }> {
  const res = await fetch(`${baseUrl}/metrics`); // fetch speaks HTTP/1.1
  assert.equal(res.status, 200);
  const samples: Sample[] = [];
  for (const line of (await res.text()).split("\n")) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return { contentType: res.headers.get("content-type"), samples };
}

/** The value of the one sample with this name and these labels; 0 when the series does not exist yet. */
function value(samples: Sample[], name: string, labels: Record<string, string>): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value ?? 0;
}

const getPerson = { grpc_type: "unary", grpc_service: "RouteGuide", grpc_method: "GetPerson" };
const getPeopleLabels = { grpc_type: "bidi_stream", grpc_service: "RouteGuide", grpc_method: "GetPeople" };
const peer = /^127\.0\.0\.1:\d+$/;

// The client options per protocol, and the label each gets: gRPC is HTTP/2 only, browsers use HTTP/1.1.
const unaryVariants = [
  { protocol: "grpc", httpVersion: "2", http: "2.0", label: "grpc" },
  { protocol: "grpc-web", httpVersion: "1.1", http: "1.1", label: "grpc_web" },
  { protocol: "connect", httpVersion: "1.1", http: "1.1", label: "connect" },
  { protocol: "connect", httpVersion: "2", http: "2.0", label: "connect" },
] as const;

describe("logs and metrics at the default level", () => {
  let server: RunningServer;
  let logs: LogLines;
  before(async () => ({ server, logs } = await start("info")));
  after(() => server.close());

  for (const v of unaryVariants) {
    it(`logs and counts unary ${v.protocol} calls over HTTP/${v.http}`, async () => {
      const client = createRouteGuideClient({ baseUrl: server.url, protocol: v.protocol, httpVersion: v.httpVersion });
      const before = (await scrape(server.url)).samples;
      const [ok, notFound] = await logs.of(2, async () => {
        assert.equal((await client.getPerson({ name: "Alice" })).age, 30);
        await assert.rejects(client.getPerson({ name: "Charlie" }), { code: Code.NotFound });
      });
      assert.deepEqual(
        { ...ok, time: 0, pid: 0, hostname: "", ms: 0, peer: "" },
        {
          level: 30,
          time: 0,
          pid: 0,
          hostname: "",
          procedure: "/RouteGuide/GetPerson",
          protocol: v.protocol,
          http: v.http,
          code: "ok",
          status: 200,
          ms: 0,
          peer: "",
          msg: "rpc",
        },
      );
      assert.equal(typeof ok!.ms, "number");
      assert.ok((ok!.ms as number) > 0);
      assert.match(ok!.peer as string, peer);
      // A client's mistake is not the server's error: info, not error.
      assert.equal(notFound!.level, 30);
      assert.equal(notFound!.code, "not_found");
      assert.equal(notFound!.status, v.protocol === "connect" ? 404 : 200);
      assert.equal(notFound!.reason, 'no person named "Charlie"');

      const after = (await scrape(server.url)).samples;
      const labels = { ...getPerson, protocol: v.label };
      const delta = (name: string, extra: Record<string, string> = {}) =>
        value(after, name, { ...labels, ...extra }) - value(before, name, { ...labels, ...extra });
      assert.equal(delta("grpc_server_started_total"), 2);
      assert.equal(delta("grpc_server_handled_total", { grpc_code: "OK" }), 1);
      assert.equal(delta("grpc_server_handled_total", { grpc_code: "NOT_FOUND" }), 1);
      assert.equal(delta("grpc_server_handling_seconds_count"), 2);
      assert.equal(delta("grpc_server_handling_seconds_bucket", { le: "+Inf" }), 2);
      assert.equal(delta("grpc_server_handling_seconds_bucket", { le: "10" }), 2); // buckets are cumulative
      assert.ok(delta("grpc_server_handling_seconds_sum") > 0);
      assert.equal(delta("grpc_server_msg_received_total"), 2);
      assert.equal(delta("grpc_server_msg_sent_total"), 1);
      assert.equal(value(after, "grpc_server_calls_in_flight", labels), 0);
    });
  }

  for (const v of [
    { protocol: "grpc", label: "grpc" },
    { protocol: "grpc-web", label: "grpc_web" },
    { protocol: "connect", label: "connect" },
  ] as const) {
    it(`logs and counts the messages of a ${v.protocol} bidi stream`, async () => {
      const before = (await scrape(server.url)).samples;
      const [line] = await logs.of(1, async () => {
        const got = await getPeople({ baseUrl: server.url, protocol: v.protocol }, "Alice", "Bob", "Charlie", "Alice");
        assert.deepEqual(got, ["Alice", "Bob", "Alice"]);
      });
      assert.equal(line!.procedure, "/RouteGuide/GetPeople");
      assert.equal(line!.protocol, v.protocol);
      assert.equal(line!.http, "2.0");
      assert.equal(line!.code, "ok");
      assert.equal(line!.received, 4);
      assert.equal(line!.sent, 3);
      assert.match(line!.peer as string, peer);

      const after = (await scrape(server.url)).samples;
      const labels = { ...getPeopleLabels, protocol: v.label };
      const delta = (name: string, extra: Record<string, string> = {}) =>
        value(after, name, { ...labels, ...extra }) - value(before, name, { ...labels, ...extra });
      assert.equal(delta("grpc_server_started_total"), 1);
      assert.equal(delta("grpc_server_handled_total", { grpc_code: "OK" }), 1);
      assert.equal(delta("grpc_server_msg_received_total"), 4);
      assert.equal(delta("grpc_server_msg_sent_total"), 3);
      assert.equal(delta("grpc_server_handling_seconds_count"), 1);
      assert.equal(value(after, "grpc_server_calls_in_flight", labels), 0);
    });
  }

  it("counts an open stream as in flight until it ends", async () => {
    const labels = { ...getPeopleLabels, protocol: "grpc" };
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    async function* held(): AsyncIterable<Name> {
      yield create(NameSchema, { name: "Alice" });
      await released;
    }
    const client = createRouteGuideClient({ baseUrl: server.url, protocol: "grpc" });
    const replies = client.getPeople(held())[Symbol.asyncIterator]();
    assert.equal((await replies.next()).value?.name, "Alice");
    assert.equal(value((await scrape(server.url)).samples, "grpc_server_calls_in_flight", labels), 1);
    await logs.of(1, async () => {
      release();
      assert.equal((await replies.next()).done, true);
    });
    assert.equal(value((await scrape(server.url)).samples, "grpc_server_calls_in_flight", labels), 0);
  });

  it("logs the peer's own address and port", async () => {
    let localPort = 0;
    const [line] = await logs.of(1, async () => {
      ({ localPort } = await postHttp1(server.url, "/RouteGuide/GetPerson", '{"name":"Bob"}'));
    });
    assert.equal(line!.peer, `127.0.0.1:${localPort}`);
  });

  it("logs and counts calls refused before they reach the service, as the client's doing", async () => {
    const before = (await scrape(server.url)).samples;
    const lines = await logs.of(2, async () => {
      // Bytes that are not a protobuf Name: connect-node answers INTERNAL before calling the service.
      const reply = await h2Request(
        server.url,
        { ":path": "/RouteGuide/GetPerson", "content-type": "application/grpc", te: "trailers" },
        envelope(0, Buffer.from([0xff, 0xff, 0xff])),
      );
      assert.equal(grpcStatus(reply), Code.Internal);
      assert.equal((await postHttp1(server.url, "/RouteGuide/GetPerson", '{"name":')).status, 400);
    });
    assert.deepEqual(
      lines.map((l) => [l.level, l.protocol, l.code, l.status]),
      [
        [30, "grpc", "internal", 200],
        [30, "connect", "invalid_argument", 400],
      ],
    );
    const after = (await scrape(server.url)).samples;
    const delta = (labels: Record<string, string>) =>
      value(after, "grpc_server_handled_total", { ...getPerson, ...labels }) -
      value(before, "grpc_server_handled_total", { ...getPerson, ...labels });
    assert.equal(delta({ protocol: "grpc", grpc_code: "INTERNAL" }), 1);
    assert.equal(delta({ protocol: "connect", grpc_code: "INVALID_ARGUMENT" }), 1);
  });

  it("serves the Prometheus text format with process metrics, on the service's port", async () => {
    const { contentType, samples } = await scrape(server.url);
    assert.match(contentType ?? "", /^text\/plain; version=0\.0\.4/);
    for (const name of ["process_cpu_user_seconds_total", "process_resident_memory_bytes", "nodejs_heap_size_used_bytes"]) {
      assert.ok(samples.some((s) => s.name === name), `${name} is missing`);
    }
    // Every procedure and protocol has its series from the start, so rates work from the first call.
    for (const protocol of ["grpc", "grpc_web", "connect"]) {
      assert.ok(samples.some((s) => s.name === "grpc_server_started_total" && s.labels.protocol === protocol && s.labels.grpc_method === "GetPeople"));
    }
    // An RPC path is not a metrics path and the reverse: the scrapes above were not counted as calls.
    const reply = await fetch(`${server.url}/metrics`, { method: "POST" });
    assert.equal(reply.status, 405);
  });
});

describe("the line per RPC", () => {
  it("is the line pino itself would write for the same fields", async () => {
    const lines: string[] = [];
    const logger = (await createLogger("info", { write: (line: string) => lines.push(line) })).child({ procedure: "/A/B", protocol: "grpc" });
    infoLineWriter(logger, "rpc")('"http":"2.0","code":"ok","status":200,"ms":0.25,"peer":"[::1]:5","reason":"a \\"quoted\\" word"');
    logger.info({ http: "2.0", code: "ok", status: 200, ms: 0.25, peer: "[::1]:5", reason: 'a "quoted" word' }, "rpc");
    const [fast, pino] = lines.map((line) => line.replace(/"time":\d+/, '"time":0'));
    assert.equal(fast, pino);
  });
});

describe("log levels", () => {
  it("--log-level warn keeps RPC lines out of the log", async () => {
    const level = parseConfig(["--log-level", "warn"]).logLevel;
    const { server, logs } = await start(level);
    try {
      const client = createRouteGuideClient({ baseUrl: server.url, protocol: "grpc" });
      await client.getPerson({ name: "Alice" });
      await assert.rejects(client.getPerson({ name: "Charlie" }));
      // The tally and the log line are written together: once both calls are counted, a line would be there.
      for (let i = 0; i < 500; i++) {
        const handled = (await scrape(server.url)).samples
          .filter((s) => s.name === "grpc_server_handled_total" && s.labels.protocol === "grpc")
          .reduce((sum, s) => sum + s.value, 0);
        if (handled === 2) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.deepEqual(logs.entries, []);
    } finally {
      await server.close();
    }
  });

  it("rejects an unknown level", () => {
    assert.throws(() => parseConfig(["--log-level", "loud"]), ConfigError);
    assert.equal(parseConfig([], { LOG_LEVEL: "silent" }).logLevel, "silent");
    assert.equal(parseConfig([]).logLevel, "info");
  });
});

describe("a failure inside the service", () => {
  // A RouteGuide whose GetPerson has a bug for one name, served through the real pipeline.
  const routes = (router: ConnectRouter) =>
    router.service(RouteGuide, {
      getPerson({ name }) {
        if (name === "bug") throw new TypeError("cannot read the directory");
        if (name === "") throw new ConnectError("name must not be empty", Code.InvalidArgument);
        return create(PersonSchema, { name });
      },
      async *getPeople() {},
    });
  let url: string;
  let logs: LogLines;
  let observability: Observability;
  let h2: http2.Http2Server;
  const sessions: http2.ServerHttp2Session[] = [];
  before(async () => {
    logs = new LogLines();
    const table = createRouteTable(routes, { interceptors: [recordingInterceptor] });
    observability = new Observability(table, await createLogger("warn", logs));
    const handler = createHttpHandler({ table, corsOrigins: [], contextValues: observability.contextValues, acceptEncodings: [] });
    h2 = http2.createServer(observability.observe(handler));
    h2.on("session", (session) => sessions.push(session));
    h2.listen(0, "127.0.0.1");
    await once(h2, "listening");
    url = `http://127.0.0.1:${(h2.address() as AddressInfo).port}`;
  });
  after(() => {
    for (const session of sessions) session.destroy(); // the client keeps its connection open
    return new Promise((resolve) => h2.close(resolve));
  });

  it("is logged at error level with its cause, even when info lines are off", async () => {
    const client = createRouteGuideClient({ baseUrl: url, protocol: "grpc" });
    await client.getPerson({ name: "Alice" });
    await assert.rejects(client.getPerson({ name: "" }), { code: Code.InvalidArgument });
    const [line] = await logs.of(1, () => assert.rejects(client.getPerson({ name: "bug" }), { code: Code.Internal }));
    assert.equal(line!.level, 50);
    assert.equal(line!.code, "internal");
    assert.equal(line!.procedure, "/RouteGuide/GetPerson");
    const err = line!.err as { type: string; message: string; stack: string };
    assert.equal(err.type, "TypeError");
    assert.equal(err.message, "cannot read the directory");
    assert.match(err.stack, /observability\.test\.ts/);
    // The two calls before were counted but not logged at this level.
    const samples = await observability.metrics.registry.getSingleMetricAsString("grpc_server_handled_total");
    assert.match(samples, /grpc_method="GetPerson",protocol="grpc",grpc_code="OK"} 1/);
    assert.match(samples, /grpc_method="GetPerson",protocol="grpc",grpc_code="INVALID_ARGUMENT"} 1/);
    assert.match(samples, /grpc_method="GetPerson",protocol="grpc",grpc_code="INTERNAL"} 1/);
  });
});

describe("npm start's log", () => {
  /** Runs src/main.ts, makes one call, stops it with SIGTERM and returns everything it printed. */
  async function run(args: string[]): Promise<string[]> {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--host", "127.0.0.1", "--port", "0", ...args], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines: string[] = [];
    const exited = once(child, "exit");
    const reader = createInterface({ input: child.stdout! });
    const closed = once(reader, "close");
    let resolveFirst!: (line: string) => void;
    const first = new Promise<string>((resolve) => (resolveFirst = resolve));
    reader.on("line", (line) => {
      if (lines.push(line) === 1) resolveFirst(line);
    });
    const port = Number(/^Server started on port (\d+)$/.exec(await first)![1]);
    const client = createRouteGuideClient({ baseUrl: `http://127.0.0.1:${port}`, protocol: "grpc" });
    await client.getPerson({ name: "Alice" });
    child.kill("SIGTERM");
    assert.deepEqual(await exited, [0, null]);
    await closed;
    return lines;
  }

  it("is JSON lines after the start line, one per RPC; --log-level warn leaves only the start line", async () => {
    const [info, warn] = await Promise.all([run([]), run(["--log-level", "warn"])]);
    assert.match(info[0]!, /^Server started on port \d+$/);
    const entries = info.slice(1).map((line) => JSON.parse(line) as Record<string, unknown>);
    const rpc = entries.filter((e) => e.msg === "rpc");
    assert.equal(rpc.length, 1);
    assert.equal(rpc[0]!.procedure, "/RouteGuide/GetPerson");
    assert.equal(rpc[0]!.code, "ok");
    assert.ok(entries.some((e) => /^SIGTERM: shutting down/.test(e.msg as string)));
    assert.equal(warn.length, 1);
    assert.match(warn[0]!, /^Server started on port \d+$/);
  });
});

function postHttp1(baseUrl: string, path: string, body: string): Promise<{ status: number; localPort: number }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${baseUrl}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      agent: false,
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const localPort = req.socket!.localPort!;
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode!, localPort }));
    });
    req.end(body);
  });
}
