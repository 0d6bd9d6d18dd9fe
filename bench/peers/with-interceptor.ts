// Our server with one router interceptor that does nothing but call the next
// step: what the interceptor chain itself costs on the engine (issue 10's
// goal: at most 10% of GetPerson's req/s). Same config as `npm start`.
import type { Interceptor } from "@connectrpc/connect";
import { parseConfig } from "../../src/config.js";
import { startServer } from "../../src/server.js";

const noop: Interceptor = (next) => (req) => next(req);

const config = parseConfig(process.argv.slice(2), process.env);
const server = await startServer(config, { interceptors: [noop] });
console.log(`Server started on port ${server.port}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => void server.close(0).then(() => process.exit(0)));
}
