// /metrics under --workers N (src/transport/workers.ts): whichever worker a scrape
// reaches answers with the sum over every worker. The worker asks the primary; the
// primary gathers each worker's registry with prom-client's AggregatorRegistry.
import cluster from "node:cluster";
import { AggregatorRegistry, type Registry } from "prom-client";

const requestType = "routeguide:metrics-request";
const replyType = "routeguide:metrics-reply";

interface MetricsRequest {
  type: typeof requestType;
  id: number;
}

type MetricsReply = { type: typeof replyType; id: number } & ({ text: string } | { error: string });

const isMessage = <T extends { type: string }>(message: unknown, type: T["type"]): message is T =>
  typeof message === "object" && message !== null && (message as { type?: unknown }).type === type;

/** In the primary: answers each worker's request with every worker's metrics, summed. */
export function serveClusterMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on("message", (worker, message: unknown) => {
    if (!isMessage<MetricsRequest>(message, requestType)) return;
    const reply = (body: { text: string } | { error: string }) => {
      if (worker.isConnected()) worker.send({ type: replyType, id: message.id, ...body } satisfies MetricsReply);
    };
    aggregator.clusterMetrics().then(
      (text) => reply({ text }),
      (err: unknown) => reply({ error: String(err) }),
    );
  });
}

/**
 * In a worker: offers `registry` to the primary's aggregation and returns
 * what /metrics serves, the text the primary sends back.
 */
export function joinClusterMetrics(registry: Registry): () => Promise<string> {
  // Its constructor installs the listener that sends this worker's registries to the primary.
  new AggregatorRegistry();
  AggregatorRegistry.setRegistries([registry]);
  const pending = new Map<number, { resolve: (text: string) => void; reject: (err: Error) => void }>();
  let nextId = 0;
  process.on("message", (message: unknown) => {
    if (!isMessage<MetricsReply>(message, replyType)) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if ("text" in message) waiter?.resolve(message.text);
    else waiter?.reject(new Error(message.error));
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      process.send!({ type: requestType, id } satisfies MetricsRequest);
    });
}
