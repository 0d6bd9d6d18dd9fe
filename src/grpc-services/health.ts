import type { ServerResponse } from "node:http";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import {
  Health,
  type HealthCheckResponse,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from "../../gen/grpc/health/v1/health_pb.js";
import type { RequestHandler } from "../transport/listener.js";

type Listener = (service: string, status: ServingStatus) => void;

/** The gRPC health protocol caps List at this many services. */
const maxListedServices = 100;

/**
 * Serving status per service name, as the gRPC health protocol reports it.
 * The empty name "" is the server's overall health. Services never set are
 * unknown: Check answers NOT_FOUND, Watch SERVICE_UNKNOWN.
 */
export class HealthStatus {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #listeners = new Set<Listener>();

  get(service: string): ServingStatus | undefined {
    return this.#statuses.get(service);
  }

  /** A snapshot of every known service's status. */
  all(): ReadonlyMap<string, ServingStatus> {
    return new Map(this.#statuses);
  }

  set(service: string, status: ServingStatus): void {
    if (this.#statuses.get(service) === status) return;
    this.#statuses.set(service, status);
    for (const listener of this.#listeners) listener(service, status);
  }

  /** Sets every known service, e.g. NOT_SERVING when the server starts shutting down. */
  setAll(status: ServingStatus): void {
    for (const service of [...this.#statuses.keys()]) this.set(service, status);
  }

  /** Calls `listener` after each change; returns the function that stops it. */
  subscribe(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** How many subscribers are attached (one per open Watch call): lets tests and metrics see leaks. */
  get subscriberCount(): number {
    return this.#listeners.size;
  }
}

/**
 * Check's answer for a status, one frozen message per status: frozen says it
 * never changes, so the engine keeps its encodings (src/engine/engine.ts), and a
 * health check, sent every few seconds by every probe, encodes nothing.
 */
function checkAnswer(status: ServingStatus): HealthCheckResponse {
  let answer = checkAnswers.get(status);
  if (answer === undefined) checkAnswers.set(status, (answer = Object.freeze(create(HealthCheckResponseSchema, { status }))));
  return answer;
}

const checkAnswers = new Map<ServingStatus, HealthCheckResponse>();

/** Serves grpc.health.v1.Health (Check, List, Watch) from `health`. */
export function registerHealth(router: ConnectRouter, health: HealthStatus): void {
  router.service(Health, {
    check({ service }) {
      const status = health.get(service);
      if (status === undefined) {
        throw new ConnectError(`unknown service ${JSON.stringify(service)}`, Code.NotFound);
      }
      return checkAnswer(status);
    },

    list() {
      const statuses = health.all();
      if (statuses.size > maxListedServices) {
        throw new ConnectError(`more than ${maxListedServices} services`, Code.ResourceExhausted);
      }
      return { statuses: Object.fromEntries([...statuses].map(([name, status]) => [name, { status }])) };
    },

    watch: ({ service }, ctx) => watch(health, service, ctx.signal),
  });
}

/**
 * Sends the current status, then the latest one after each change, until
 * `signal` aborts (client gone, deadline, shutdown). Like grpc-go, a slow
 * reader gets the newest status rather than every intermediate one.
 */
async function* watch(
  health: HealthStatus,
  service: string,
  signal: AbortSignal,
): AsyncGenerator<MessageInitShape<typeof HealthCheckResponseSchema>> {
  let wake = () => {};
  const unsubscribe = health.subscribe((changed) => {
    if (changed === service) wake();
  });
  // Unsubscribe on abort too, not only in `finally`: a caller that stops
  // reading may never resume this generator from its `yield`.
  const onAbort = () => {
    unsubscribe();
    wake();
  };
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    let sent: ServingStatus | undefined;
    for (;;) {
      const status = health.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
      if (status !== sent) {
        sent = status;
        yield { status };
        // The status may have changed while the client was reading: look again before sleeping.
        continue;
      }
      if (signal.aborted) throw ConnectError.from(signal.reason);
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    unsubscribe();
    signal.removeEventListener("abort", onAbort);
  }
}

/**
 * GET /healthz for load balancers that speak plain HTTP: 200 while the
 * server's overall status is SERVING, 503 otherwise (e.g. during shutdown).
 */
export function readinessEndpoint(health: HealthStatus): RequestHandler {
  return (req, response) => {
    const res = response as ServerResponse; // the HTTP/2 compat response has the same methods
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD", "content-length": 0 });
      res.end();
      return;
    }
    const status = health.get("") ?? ServingStatus.SERVICE_UNKNOWN;
    const body = `${ServingStatus[status]}\n`;
    res.writeHead(status === ServingStatus.SERVING ? 200 : 503, {
      "content-type": "text/plain; charset=utf-8",
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
    });
    res.end(req.method === "HEAD" ? undefined : body);
  };
}
