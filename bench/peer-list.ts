// The servers compared. Each runs as its own process on 127.0.0.1 and prints
// "Server started on port N"; port 0 lets it pick a free one. To run a peer
// with more flags, add them to its command line here.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "./server-process.js";
import type { Feature } from "./workloads.js";

export const ROOT = join(import.meta.dirname, "..");
/** Every Node peer runs on the project's Node 24, like our server. */
export const NODE = join(ROOT, "node_modules", ".bin", "node");
/** Debian's interpreter, the one with python3-grpcio. */
export const PYTHON = "/usr/bin/python3";

export interface PeerContext {
  /** A free port for HTTP/1.1, for peers that cannot serve it on their main port. */
  http1Port: number;
  /** Folder of generated Python stubs (only for peers that need Python). */
  pythonStubs: string;
  /** Extra node flags for every Node peer (e.g. --cpu-prof). */
  nodeFlags: string[];
  /** The bench's OTLP sink (otlp-sink.ts), for the traced peer. */
  otlpEndpoint: string;
}

export interface Peer {
  id: string;
  label: string;
  serves: Feature[];
  /** Only these workloads, of those it serves (default: all of them). */
  workloads?: string[];
  /** Where HTTP/1.1 is served: on the main port, or on ctx.http1Port. */
  http1Port?: "main" | "separate";
  python?: true;
  command(ctx: PeerContext): Command;
}

const node = (ctx: PeerContext, script: string, ...args: string[]): Command => ({
  file: NODE,
  args: [...ctx.nodeFlags, "--import", "tsx", script, ...args],
});

/**
 * Our server runs with the Node/V8 flags of `npm start` ("exec node FLAGS
 * --import tsx src/main.ts" in package.json), so the benchmark measures what
 * is deployed; node() adds the loader itself.
 */
const startFlags = (): string[] => {
  const start: string = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).scripts.start;
  const words = start.split(/\s+/);
  const flags = words.slice(words.indexOf("node") + 1, words.indexOf("src/main.ts"));
  const loader = flags.indexOf("--import");
  if (loader >= 0) flags.splice(loader, 2);
  return flags;
};

export const peers: Peer[] = [
  {
    id: "ours",
    label: "routeguide (ours)",
    serves: ["grpc", "grpc-web", "connect", "http1", "health"],
    http1Port: "main",
    command: (ctx) =>
      node({ ...ctx, nodeFlags: [...ctx.nodeFlags, ...startFlags()] }, "src/main.ts", "--port", "0", "--host", "127.0.0.1"),
  },
  {
    // One no-op router interceptor: what the chain costs a call on the engine.
    id: "ours-interceptor",
    label: "routeguide, one no-op interceptor",
    serves: ["grpc", "grpc-web", "connect", "http1"],
    workloads: ["grpc-unary", "connect-json-h1"],
    http1Port: "main",
    command: (ctx) =>
      node({ ...ctx, nodeFlags: [...ctx.nodeFlags, ...startFlags()] }, "bench/peers/with-interceptor.ts", "--port", "0", "--host", "127.0.0.1"),
  },
  {
    // node:cluster balances connections: only the workloads with many of them can use a second worker.
    id: "ours-2w",
    label: "routeguide, --workers 2",
    serves: ["grpc", "grpc-web", "connect", "http1"],
    workloads: ["grpc-unary", "connect-json-h1"],
    http1Port: "main",
    command: (ctx) =>
      node(
        { ...ctx, nodeFlags: [...ctx.nodeFlags, ...startFlags()] },
        "src/main.ts", "--port", "0", "--host", "127.0.0.1", "--workers", "2",
      ),
  },
  {
    // Tracing on, every span exported to the bench's local OTLP sink: what a traced call costs.
    id: "ours-traced",
    label: "routeguide, tracing on (OTLP/HTTP to a local sink)",
    serves: ["grpc", "grpc-web", "connect", "http1"],
    workloads: ["grpc-unary", "connect-json-h1"],
    http1Port: "main",
    command: (ctx) => ({
      ...node({ ...ctx, nodeFlags: [...ctx.nodeFlags, ...startFlags()] }, "src/main.ts", "--port", "0", "--host", "127.0.0.1"),
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: ctx.otlpEndpoint },
    }),
  },
  {
    id: "grpc-js",
    label: "@grpc/grpc-js",
    serves: ["grpc"],
    command: (ctx) => node(ctx, "peers/grpc-js-server.ts", "--port", "0"),
  },
  {
    id: "python",
    label: "Python grpcio (tutorial)",
    serves: ["grpc"],
    python: true,
    command: (ctx) => ({
      file: PYTHON,
      args: ["peers/python/server.py", "0"],
      env: { PYTHONPATH: ctx.pythonStubs, PYTHONUNBUFFERED: "1" },
    }),
  },
  {
    id: "connect-defaults",
    label: "connect-node defaults",
    serves: ["grpc", "grpc-web", "connect", "http1"],
    http1Port: "separate",
    command: (ctx) =>
      node(ctx, "bench/peers/connect-defaults.ts", "--port", "0", "--http1-port", String(ctx.http1Port)),
  },
  {
    id: "bare",
    label: "bare node:http2 (ceiling)",
    serves: ["grpc"],
    command: (ctx) => node(ctx, "bench/peers/bare-http2.ts", "--port", "0"),
  },
];

/** The peers the ratios are taken against. */
export const references = ["grpc-js", "connect-defaults", "bare"] as const;
