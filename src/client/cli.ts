import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { NameSchema, type Name } from "../../gen/route_guide_pb.js";
import { createRouteGuideClient, protocols, type Protocol } from "./client.js";
import { formatPerson } from "./tutorial-format.js";
import { startTracing } from "../observability/tracing.js";

const usage = `Usage: npm run client -- [--url URL] [--protocol grpc|grpc-web|connect] [--json] [--http1] [--ca FILE] [NAME...]

Does what the tutorial's client does: GetPerson for the first name (default Alice),
then GetPeople for all names (default Alice Bob Charlie), one line per person.

  --ca FILE   PEM certificate of a CA to trust for https:// URLs, besides Node's own
              (NODE_EXTRA_CA_CERTS=FILE does the same for any Node program)`;

/** The tutorial's client.py, as a CLI over any of the three protocols. */
async function main(): Promise<number> {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      url: { type: "string", default: "http://localhost:50051" },
      protocol: { type: "string", default: "grpc" },
      json: { type: "boolean", default: false },
      http1: { type: "boolean", default: false },
      ca: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (!protocols.includes(values.protocol as Protocol)) {
    console.error(`unknown protocol ${JSON.stringify(values.protocol)}: use one of ${protocols.join(", ")}`);
    return 2;
  }
  let ca: string | undefined;
  if (values.ca !== undefined) {
    try {
      ca = await readFile(values.ca, "utf8");
    } catch (err) {
      console.error(`error: --ca ${values.ca}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`);
      return 1;
    }
  }
  const client = createRouteGuideClient({
    baseUrl: values.url,
    protocol: values.protocol as Protocol,
    json: values.json,
    httpVersion: values.http1 ? "1.1" : "2",
    ...(ca !== undefined && { ca }),
  });
  const names = positionals.length > 0 ? positionals : ["Alice", "Bob", "Charlie"];

  const person = await client.getPerson({ name: names[0] });
  console.log(formatPerson("GetPerson", person));

  if (values.http1) {
    // The server would refuse it too; saying so here avoids a confusing transport error.
    console.error("error: GetPeople is a bidirectional stream and needs HTTP/2; run without --http1");
    return 1;
  }
  for await (const p of client.getPeople(toNames(names))) {
    console.log(formatPerson("GetPeople", p));
  }
  return 0;
}

async function* toNames(names: string[]): AsyncIterable<Name> {
  for (const name of names) yield create(NameSchema, { name });
}

// With OTEL_* set, the calls' client spans are exported too, in the traces the server's spans join.
const tracing = await startTracing({ serviceName: "routeguide-cli", warn: (line) => console.error(line) });
/** Exits once the spans are out. */
const exit = (code: number) => void (tracing?.shutdown() ?? Promise.resolve()).then(() => process.exit(code));

main().then(
  (code) => exit(code),
  (err: unknown) => {
    // One line, with the status code, as a script would want to grep it.
    if (err instanceof ConnectError) {
      console.error(`error: ${err.message.startsWith("[") ? err.message : `[${err.code}] ${err.message}`}`);
    } else {
      console.error(`error: ${(err as Error).message}`);
    }
    exit(1);
  },
);
