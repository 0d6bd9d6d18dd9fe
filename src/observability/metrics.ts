import cluster from "node:cluster";
import type { ServerResponse } from "node:http";
import { collectDefaultMetrics, Counter, Gauge, type Histogram, type MetricValueWithName, Registry } from "prom-client";
import type { DescMethod } from "@bufbuild/protobuf";
import type { RequestHandler } from "../transport/listener.js";
import { joinClusterMetrics } from "./cluster-metrics.js";

export type Protocol = "grpc" | "grpc-web" | "connect";
export const protocols: readonly Protocol[] = ["grpc", "grpc-web", "connect"];

type LabelName = "grpc_type" | "grpc_service" | "grpc_method" | "protocol";
const labelNames: LabelName[] = ["grpc_type", "grpc_service", "grpc_method", "protocol"];

// The label values of go-grpc-prometheus, so its dashboards and alerts work unchanged.
const grpcTypes: Record<DescMethod["methodKind"], string> = {
  unary: "unary",
  server_streaming: "server_stream",
  client_streaming: "client_stream",
  bidi_streaming: "bidi_stream",
};
const protocolLabels: Record<Protocol, string> = { grpc: "grpc", "grpc-web": "grpc_web", connect: "connect" };

/** gRPC status code names as the gRPC spec spells them, indexed by code. */
const codeNames = [
  "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
  "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
  "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED",
];

/** Mostly sub-millisecond calls: the finer buckets below prometheus's defaults (5 ms and up) tell them apart. */
const durationBuckets = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The counts of one procedure over one protocol. Plain numbers, read by the
 * registry when /metrics is scraped: prom-client hashes the label values on
 * every inc() or observe(), even through a labels() child (~0.35-0.5 µs a time).
 */
export class CallTally {
  started = 0;
  inFlight = 0;
  received = 0;
  sent = 0;
  readonly handled: number[] = codeNames.map(() => 0);
  /** Calls per duration bucket (the last one is +Inf), not cumulative; and their total seconds. */
  readonly durations: number[] = [...durationBuckets, Infinity].map(() => 0);
  durationSum = 0;

  constructor(readonly labels: Readonly<Record<LabelName, string>>) {}

  callStarted(): void {
    this.started++;
    this.inFlight++;
  }

  callEnded(code: number, seconds: number, received: number, sent: number): void {
    this.inFlight--;
    this.handled[code >= 0 && code < codeNames.length ? code : 2]!++; // a status gRPC does not define counts as UNKNOWN
    this.received += received;
    this.sent += sent;
    let bucket = 0;
    while (bucket < durationBuckets.length && seconds > durationBuckets[bucket]!) bucket++;
    this.durations[bucket]!++;
    this.durationSum += seconds;
  }
}

/** A registry of our own (not prom-client's global one), so several servers can live in one process. */
export class ServerMetrics {
  readonly registry = new Registry();
  private readonly tallies: CallTally[] = [];
  /** Calls the engine (src/engine/) answered, per protocol; the rest went to connect-node's general path. */
  readonly #engineCalls: Record<Protocol, number> = { grpc: 0, "grpc-web": 0, connect: 0 };

  engineServed(protocol: Protocol): void {
    this.#engineCalls[protocol]++;
  }
  /** What /metrics serves: this registry, or in a cluster worker every worker's sum. */
  readonly #text: () => Promise<string> = cluster.isWorker
    ? joinClusterMetrics(this.registry)
    : () => this.registry.metrics();

  constructor() {
    const tallies = this.tallies;
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    // Each collect() copies the tallies into its metric when /metrics is scraped.
    const counter = (name: string, help: string, value: (t: CallTally) => number) =>
      new Counter({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          for (const t of tallies) this.inc(t.labels, value(t));
        },
      });
    counter("grpc_server_started_total", "Total number of RPCs started on the server.", (t) => t.started);
    counter("grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.", (t) => t.received);
    counter("grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", (t) => t.sent);
    new Counter({
      name: "grpc_server_handled_total",
      help: "Total number of RPCs completed on the server, regardless of success or failure.",
      labelNames: [...labelNames, "grpc_code"],
      registers,
      collect() {
        this.reset();
        for (const t of tallies) {
          t.handled.forEach((n, code) => {
            // OK always, so a success rate has a series to divide by from the start.
            if (n > 0 || code === 0) this.inc({ ...t.labels, grpc_code: codeNames[code]! }, n);
          });
        }
      },
    });
    new Gauge({
      name: "grpc_server_calls_in_flight",
      help: "Number of RPCs the server has started and not yet finished.",
      labelNames,
      registers,
      collect() {
        for (const t of tallies) this.set(t.labels, t.inFlight);
      },
    });
    const engineCalls = this.#engineCalls;
    new Counter({
      name: "routeguide_engine_calls_total",
      help: "RPCs answered by the server's own protocol engine rather than connect-node's general path.",
      labelNames: ["protocol"],
      registers,
      collect() {
        this.reset();
        for (const protocol of protocols) this.inc({ protocol: protocolLabels[protocol] }, engineCalls[protocol]);
      },
    });
    // The registry only reads name and get() (and calls reset()); prom-client's Histogram has no collect-time setter for buckets.
    this.registry.registerMetric(new TallyHistogram(tallies) as unknown as Histogram);
  }

  /** The tally of one procedure over one protocol; its series show up at zero before the first call. */
  tally(method: DescMethod, protocol: Protocol): CallTally {
    const labels = {
      grpc_type: grpcTypes[method.methodKind],
      grpc_service: method.parent.typeName,
      grpc_method: method.name,
      protocol: protocolLabels[protocol],
    };
    const tally = new CallTally(labels);
    this.tallies.push(tally);
    return tally;
  }

  /** `GET /metrics` in the Prometheus text format. */
  readonly endpoint: RequestHandler = (req, res) => {
    const out = res as ServerResponse; // same calls on HTTP/2's compatibility response
    if (req.method !== "GET" && req.method !== "HEAD") {
      out.writeHead(405, { allow: "GET, HEAD" });
      out.end();
      return;
    }
    this.#text().then(
      (text) => {
        out.writeHead(200, { "content-type": this.registry.contentType, "content-length": Buffer.byteLength(text) });
        if (req.method === "HEAD") out.end();
        else out.end(text);
      },
      (err: unknown) => {
        out.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
        out.end(`cannot collect metrics: ${String(err)}\n`);
      },
    );
  };
}

/** grpc_server_handling_seconds, built from the tallies when scraped, in the shape prom-client's Histogram.get() has. */
class TallyHistogram {
  readonly name = "grpc_server_handling_seconds";
  readonly help = "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.";
  readonly type = "histogram";
  readonly aggregator = "sum";

  constructor(private readonly tallies: readonly CallTally[]) {}

  async get() {
    const values: Array<MetricValueWithName<string>> = [];
    for (const t of this.tallies) {
      let cumulative = 0;
      t.durations.forEach((n, i) => {
        cumulative += n;
        const le = i < durationBuckets.length ? durationBuckets[i]! : "+Inf";
        values.push({ metricName: `${this.name}_bucket`, labels: { ...t.labels, le }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_sum`, labels: t.labels, value: t.durationSum });
      values.push({ metricName: `${this.name}_count`, labels: t.labels, value: cumulative });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {}
}
