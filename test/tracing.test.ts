// OpenTelemetry tracing, configured by OTEL_* variables and checked at a real
// OTLP/HTTP receiver (test/support/otlp-receiver.ts decodes what the
// exporter sends): one SERVER span per call on every protocol, in the
// caller's trace, with the RPC conventions' attributes; the line per RPC
// carries the ids; shutdown flushes; nothing at all without the variables.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import net from "node:net";
import { createInterface } from "node:readline";
import { after, afterEach, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { create } from "@bufbuild/protobuf";
import { Code } from "@connectrpc/connect";
import { NameSchema, type Name, RouteGuide } from "../gen/route_guide_pb.js";
import { createRouteGuideClient, protocols } from "../src/client/client.js";
import { conventionsFromEnv, rpcSpanStart } from "../src/observability/rpc-spans.js";
import { startTracing, type Tracing, tracingWanted } from "../src/observability/tracing.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./support/otlp-receiver.js";
import { envelope, grpcStatus, h2Request, nameBytes } from "./support/raw.js";
import { type RunningServer, startLoggedServer } from "./support/server.js";
import type { LogLines } from "./support/logs.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SERVER = 2;
const CLIENT = 3;
const STATUS_ERROR = 2;

const otelVars = Object.keys(process.env).filter((k) => k.startsWith("OTEL_"));
for (const name of otelVars) delete process.env[name];

/** Runs `body` with these OTEL_* variables in process.env (which the exporter reads), then removes them. */
async function withEnv<T>(vars: Record<string, string>, body: () => Promise<T>): Promise<T> {
  Object.assign(process.env, vars);
  try {
    return await body();
  } finally {
    for (const name of Object.keys(vars)) delete process.env[name];
  }
}

const warnings: string[] = [];
const warn = (line: string) => warnings.push(line);

interface Traced {
  server: RunningServer;
  logs: LogLines;
  tracing: Tracing;
}

async function startTraced(receiver: OtlpReceiver, extra: Record<string, string> = {}): Promise<Traced> {
  return withEnv({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...extra }, async () => {
    const tracing = (await startTracing({ serviceName: "routeguide", warn }))!;
    const { server, logs } = await startLoggedServer({}, { interceptors: [tracing.interceptor] });
    return { server, logs, tracing };
  });
}

/** Stops the server, then the SDK: every span ended by then has reached the receiver. */
async function stop({ server, tracing }: Traced): Promise<void> {
  await server.close(0);
  await tracing.shutdown();
}

const serverSpans = (receiver: OtlpReceiver) => receiver.spans.filter((s) => s.kind === SERVER);

function only(spans: ReceivedSpan[], what: string): ReceivedSpan {
  assert.equal(spans.length, 1, `one span ${what}: ${JSON.stringify(spans.map((s) => s.name))}`);
  return spans[0]!;
}

describe("tracing configuration", () => {
  it("is on only when an OTLP endpoint or an exporter is named, and off when disabled", () => {
    assert.equal(tracingWanted({}), false);
    assert.equal(tracingWanted({ OTEL_SERVICE_NAME: "x" }), false);
    assert.equal(tracingWanted({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" }), true);
    assert.equal(tracingWanted({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:4318/v1/traces" }), true);
    assert.equal(tracingWanted({ OTEL_TRACES_EXPORTER: "console" }), true);
    assert.equal(tracingWanted({ OTEL_TRACES_EXPORTER: "none", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" }), false);
    assert.equal(tracingWanted({ OTEL_SDK_DISABLED: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" }), false);
  });

  it("writes the stable RPC names (semconv 1.45) with OTEL_SEMCONV_STABILITY_OPT_IN=rpc, both with rpc/dup", () => {
    const getPerson = RouteGuide.method.getPerson;
    assert.deepEqual(rpcSpanStart(getPerson, true, conventionsFromEnv({})).attributes, {
      "rpc.system": "grpc",
      "rpc.service": "RouteGuide",
      "rpc.method": "GetPerson",
    });
    assert.deepEqual(rpcSpanStart(getPerson, false, conventionsFromEnv({ OTEL_SEMCONV_STABILITY_OPT_IN: "http,rpc" })).attributes, {
      "rpc.system.name": "connectrpc",
      "rpc.method": "RouteGuide/GetPerson",
    });
    const both = rpcSpanStart(getPerson, true, conventionsFromEnv({ OTEL_SEMCONV_STABILITY_OPT_IN: "rpc/dup" }));
    assert.equal(both.name, "RouteGuide/GetPerson");
    assert.equal(both.attributes["rpc.system"], "grpc");
    assert.equal(both.attributes["rpc.system.name"], "grpc");
  });

  it("starts nothing without the variables", async () => {
    assert.equal(await startTracing({ serviceName: "routeguide", warn }), undefined);
  });
});

describe("server spans at an OTLP receiver", () => {
  let receiver: OtlpReceiver;
  let traced: Traced;
  before(async () => {
    receiver = await startOtlpReceiver();
    traced = await startTraced(receiver);
    const { url } = traced.server;

    for (const protocol of protocols) {
      const client = createRouteGuideClient({ baseUrl: url, protocol });
      await client.getPerson({ name: "Alice" }, { headers: { "x-case": `unary ${protocol}` } });
    }
    // A caller with its own trace, over Connect JSON on HTTP/1.1.
    const reply = await fetch(`${url}/RouteGuide/GetPerson`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        tracestate: "congo=t61rcWkgMzE",
      },
      body: '{"name":"Bob"}',
    });
    assert.equal(reply.status, 200);
    const connect = createRouteGuideClient({ baseUrl: url, protocol: "connect" });
    await assert.rejects(connect.getPerson({ name: "Charlie" }), { code: Code.NotFound });
    const grpc = createRouteGuideClient({ baseUrl: url, protocol: "grpc" });
    const people: string[] = [];
    for await (const p of grpc.getPeople(names("Alice", "Charlie", "Bob"))) people.push(p.name);
    assert.deepEqual(people, ["Alice", "Bob"]);
    // A stream the deadline ends while it waits for the next name: the server failed to answer in time.
    // Raw, so that only the server keeps the deadline (a client's own timer could cancel first).
    const stalled = await h2Request(
      url,
      { ":path": "/RouteGuide/GetPeople", "content-type": "application/grpc", te: "trailers", "grpc-timeout": "200m" },
      envelope(0, nameBytes("Alice")),
      { end: false },
    );
    assert.equal(grpcStatus(stalled), Code.DeadlineExceeded);
    await stop(traced);
  });
  after(() => receiver.close());

  const unaryOver = (protocol: string) =>
    serverSpans(receiver).filter((s) => s.name === "RouteGuide/GetPerson" && s.attributes["rpc.system"] === (protocol === "connect" ? "connect_rpc" : "grpc"));

  it("names each GetPerson span by the RPC conventions, with kind SERVER, the service and the method", () => {
    const spans = serverSpans(receiver).filter((s) => s.name === "RouteGuide/GetPerson");
    assert.equal(spans.length, 5, "three clients, one fetch, one NOT_FOUND");
    for (const span of spans) {
      assert.equal(span.attributes["rpc.service"], "RouteGuide");
      assert.equal(span.attributes["rpc.method"], "GetPerson");
      assert.equal(span.attributes["server.address"], "127.0.0.1");
      assert.equal(span.attributes["server.port"], traced.server.port);
      assert.equal(span.attributes["network.peer.address"], "127.0.0.1");
      assert.equal(typeof span.attributes["network.peer.port"], "number");
      assert.equal(span.resource["service.name"], "routeguide");
    }
  });

  it("tells gRPC and gRPC-Web (rpc.system grpc, rpc.grpc.status_code) from Connect (connect_rpc)", () => {
    // gRPC over HTTP/2 and gRPC-Web: both carry gRPC status codes.
    const grpcSpans = unaryOver("grpc");
    assert.equal(grpcSpans.length, 2);
    for (const span of grpcSpans) {
      assert.equal(span.attributes["rpc.grpc.status_code"], 0);
      assert.equal(span.status.code, 0, "OK is left unset");
    }
    const connectSpans = unaryOver("connect");
    assert.equal(connectSpans.length, 3);
    const notFound = only(connectSpans.filter((s) => s.attributes["rpc.connect_rpc.error_code"] !== undefined), "with an error code");
    assert.equal(notFound.attributes["rpc.connect_rpc.error_code"], "not_found");
    // NOT_FOUND is the caller's mistake, not a failure of the server: no ERROR status (gRPC's rule for server spans).
    assert.equal(notFound.status.code, 0);
  });

  it("continues the caller's trace from traceparent and tracestate", () => {
    const span = only(
      serverSpans(receiver).filter((s) => s.traceId === "0af7651916cd43dd8448eb211c80319c"),
      "in the caller's trace",
    );
    assert.equal(span.parentSpanId, "b7ad6b7169203331");
    assert.equal(span.traceState, "congo=t61rcWkgMzE");
    assert.equal(span.attributes["rpc.system"], "connect_rpc");
  });

  it("puts the client's span (our client module) and the server's in one trace, the server's a child of the client's", () => {
    for (const protocol of protocols) {
      const clientSpans = receiver.spans.filter((s) => s.kind === CLIENT && s.name === "RouteGuide/GetPerson");
      const server = serverSpans(receiver).filter((s) => clientSpans.some((c) => c.spanId === s.parentSpanId && c.traceId === s.traceId));
      assert.ok(server.some((s) => unaryOver(protocol).includes(s)), `a ${protocol} server span under a client span`);
    }
  });

  it("counts a stream's messages as rpc.message events, received and sent", () => {
    const stream = serverSpans(receiver).filter((s) => s.name === "RouteGuide/GetPeople" && s.attributes["rpc.grpc.status_code"] === 0);
    const span = only(stream, "for the GetPeople that ended OK");
    const events = span.events.map((e) => `${e.attributes["rpc.message.type"]} ${e.attributes["rpc.message.id"]}`);
    assert.deepEqual(events.filter((e) => e.startsWith("RECEIVED")), ["RECEIVED 1", "RECEIVED 2", "RECEIVED 3"]);
    assert.deepEqual(events.filter((e) => e.startsWith("SENT")), ["SENT 1", "SENT 2"]);
    assert.ok(span.events.every((e) => e.name === "rpc.message"));
  });

  it("marks a call the server failed (DEADLINE_EXCEEDED) with an ERROR status and its message", () => {
    const span = only(
      serverSpans(receiver).filter((s) => s.attributes["rpc.grpc.status_code"] === Code.DeadlineExceeded),
      "that hit its deadline",
    );
    assert.equal(span.name, "RouteGuide/GetPeople");
    assert.equal(span.status.code, STATUS_ERROR);
    assert.notEqual(span.status.message, "");
    assert.ok(span.events.some((e) => e.name === "exception"));
  });

  it("writes the span's trace_id and span_id on the call's log line", () => {
    const lines = traced.logs.entries.filter((e) => e.msg === "rpc" && e.procedure === "/RouteGuide/GetPerson");
    assert.equal(lines.length, 5);
    for (const line of lines) {
      const span = only(serverSpans(receiver).filter((s) => s.spanId === line.span_id), `for log line ${JSON.stringify(line)}`);
      assert.equal(span.traceId, line.trace_id);
    }
  });
});

describe("a collector that is not there", () => {
  it("neither fails nor holds calls; the spans lost are counted and logged once", async () => {
    const port = await closedPort();
    const receiver = await startOtlpReceiver();
    const traced = await startTraced(receiver, {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`,
      OTEL_EXPORTER_OTLP_TIMEOUT: "1000",
      OTEL_BSP_MAX_QUEUE_SIZE: "4",
    });
    warnings.length = 0;
    const client = createRouteGuideClient({ baseUrl: traced.server.url, protocol: "grpc" });
    for (let i = 0; i < 20; i++) assert.equal((await client.getPerson({ name: "Alice" })).name, "Alice");
    await stop(traced);
    await receiver.close();
    assert.ok(traced.tracing.dropped > 0, "a queue of 4 cannot hold 20 calls' spans");
    assert.equal(warnings.filter((w) => w.includes("dropping spans")).length, 1, warnings.join("\n"));
    assert.ok(warnings.some((w) => w.includes(`${traced.tracing.dropped} spans were dropped`)), warnings.join("\n"));
  });
});

describe("npm start with OTEL_* set (a child process)", () => {
  let receiver: OtlpReceiver;
  let child: ChildProcess | undefined;
  before(async () => (receiver = await startOtlpReceiver()));
  afterEach(() => child?.kill("SIGKILL"));
  after(() => receiver.close());

  it("flushes the spans of its calls when it gets SIGTERM, and its CLI calls share their traces", async () => {
    // A schedule far beyond the test: only the flush at shutdown can deliver.
    const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: "600000" };
    const started = await startChild(env);
    child = started.child;
    await runCli(started.url, env);
    child.kill("SIGTERM");
    await once(child, "exit");
    const server = serverSpans(receiver);
    assert.deepEqual(server.map((s) => s.name).sort(), ["RouteGuide/GetPeople", "RouteGuide/GetPerson"]);
    for (const span of server) {
      const parent = only(receiver.spans.filter((s) => s.spanId === span.parentSpanId), `parent of ${span.name}`);
      assert.equal(parent.kind, CLIENT);
      assert.equal(parent.traceId, span.traceId);
      assert.equal(parent.resource["service.name"], "routeguide-cli");
    }
    assert.ok(started.lines.some((l) => l.includes('"trace_id"')), "the log lines carry the trace ids");
  });

  for (const [what, env] of [
    ["OTEL_SDK_DISABLED=true", { OTEL_SDK_DISABLED: "true" }],
    ["OTEL_TRACES_EXPORTER=none", { OTEL_TRACES_EXPORTER: "none" }],
  ] as const) {
    it(`sends nothing and logs no trace ids with ${what}`, async () => {
      const before = receiver.requests;
      const started = await startChild({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...env });
      child = started.child;
      await runCli(started.url, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, ...env });
      child.kill("SIGTERM");
      await once(child, "exit");
      assert.equal(receiver.requests, before);
      assert.ok(started.lines.some((l) => l.includes('"msg":"rpc"')), "the calls were logged");
      assert.ok(!started.lines.some((l) => l.includes("trace_id")));
    });
  }
});

async function* names(...list: string[]): AsyncIterable<Name> {
  for (const name of list) yield create(NameSchema, { name });
}

function closedPort(): Promise<number> {
  const server = net.createServer();
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    }),
  );
}

/** `node --import tsx src/main.ts` on a free port with these variables; its stdout lines are collected. */
async function startChild(vars: Record<string, string>): Promise<{ child: ChildProcess; url: string; lines: string[] }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--port", "0", "--host", "127.0.0.1"], {
    cwd: ROOT,
    env: { ...process.env, ...vars },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const reader = createInterface({ input: child.stdout! });
  const port = await new Promise<number>((resolve, reject) => {
    reader.on("line", (line) => {
      lines.push(line);
      const match = /^Server started on port (\d+)$/.exec(line);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`src/main.ts exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}`, lines };
}

/** The CLI (GetPerson Alice, then GetPeople Alice Bob) with these variables; fails if it fails. */
async function runCli(url: string, vars: Record<string, string>): Promise<void> {
  const cli = spawn(process.execPath, ["--import", "tsx", "src/client/cli.ts", "--url", url, "Alice", "Bob"], {
    cwd: ROOT,
    env: { ...process.env, ...vars },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const [code] = await once(cli, "exit");
  assert.equal(code, 0);
}
