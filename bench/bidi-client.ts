// A raw node:http2 gRPC client for GetPeople: it writes enveloped Names on
// one stream for `seconds` while it counts the Persons coming back. Much cheaper
// than a grpc-js or Connect client, so the server, not the client, sets the pace.
import http2 from "node:http2";
import { once } from "node:events";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { PersonSchema } from "../gen/person_pb.js";
import { NameSchema } from "../gen/route_guide_pb.js";
import { EnvelopeReader, envelope } from "./envelope.js";

export interface BidiResult {
  messages: number;
  seconds: number;
  rate: number;
  /** CPU the client used per second of the run: near 1 means the client was the limit. */
  clientCores: number;
}

/** Names per write: nghttp2 packs queued writes into the same DATA frames anyway, so batching only saves client CPU. */
const namesPerWrite = 64;

/**
 * Names sent and not answered yet, at most: a server with large HTTP/2
 * windows (grpcio's) would otherwise take in seconds of names it then
 * needs a minute to answer. Enough to keep the fastest server busy.
 */
const maxInFlight = 16_384;

/**
 * Names go out for `seconds` (as fast as the server's flow control and
 * maxInFlight let them), then the stream ends and every reply is awaited: the rate is replies
 * over the whole time. A run as long as the other workloads' lets every peer's
 * JIT and heap settle, which a fixed count (0.15 s for the fastest peer) did not.
 */
export async function runBidi(baseUrl: string, seconds: number, timeoutMs: number): Promise<BidiResult> {
  const one = envelope(toBinary(NameSchema, create(NameSchema, { name: "Alice" })));
  const batch = Buffer.concat(Array.from({ length: namesPerWrite }, () => one));
  const session = http2.connect(baseUrl, { settings: { initialWindowSize: 1 << 20 } });
  session.on("error", () => {}); // surfaces through the stream below
  try {
    await once(session, "connect");
    session.setLocalWindowSize(16 << 20);
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    const stream = session.request({
      ":method": "POST",
      ":path": "/RouteGuide/GetPeople",
      "content-type": "application/grpc",
      te: "trailers",
    });
    let sent = 0;
    let received = 0;
    let first: Buffer | undefined;
    // Resolved when the replies catch up to half the window again.
    let caughtUp: (() => void) | undefined;
    const reader = new EnvelopeReader((_, message) => {
      if (received++ === 0) first = Buffer.from(message);
      if (caughtUp !== undefined && sent - received <= maxInFlight / 2) {
        caughtUp();
        caughtUp = undefined;
      }
    });
    stream.on("data", (chunk: Buffer) => reader.push(chunk));
    let grpcStatus: string | undefined;
    let grpcMessage: string | undefined;
    const readStatus = (headers: http2.IncomingHttpHeaders) => {
      grpcStatus ??= headers["grpc-status"] as string | undefined;
      grpcMessage ??= headers["grpc-message"] as string | undefined;
    };
    stream.on("response", readStatus);
    stream.on("trailers", readStatus);
    // Rejects with the stream's error, if any; awaited below, so never left unhandled.
    const closed = once(stream, "close");
    closed.catch(() => {});

    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      stream.close(http2.constants.NGHTTP2_CANCEL);
    }, timeoutMs);
    try {
      const until = start + seconds * 1000;
      while (performance.now() < until && !stream.destroyed) {
        sent += namesPerWrite;
        if (!stream.write(batch)) await Promise.race([once(stream, "drain"), closed]);
        if (sent - received >= maxInFlight) await Promise.race([new Promise<void>((resolve) => (caughtUp = resolve)), closed]);
      }
      stream.end();
      await closed;
    } finally {
      clearTimeout(timer);
    }
    const elapsed = (performance.now() - start) / 1000;
    const cpu = process.cpuUsage(cpuBefore);

    if (timedOut) throw new Error(`GetPeople did not finish within ${timeoutMs / 1000} s (${received} of ${sent} replies)`);
    if (grpcStatus !== "0") throw new Error(`GetPeople ended with grpc-status ${grpcStatus}: ${grpcMessage ?? ""}`);
    if (received !== sent || reader.incomplete) throw new Error(`GetPeople answered ${received} of ${sent} names`);
    const person = fromBinary(PersonSchema, first!);
    if (person.name !== "Alice" || person.age !== 30) throw new Error(`GetPeople answered ${JSON.stringify(person)}`);
    return { messages: received, seconds: elapsed, rate: received / elapsed, clientCores: (cpu.user + cpu.system) / 1e6 / elapsed };
  } finally {
    session.destroy();
  }
}
