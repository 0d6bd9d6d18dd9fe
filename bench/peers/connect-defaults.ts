// connect-node as its documentation shows it, with no options: the starting
// point our server is measured against. Same service implementation and data
// as ours. node:http2 without TLS cannot answer HTTP/1.1, so HTTP/1.1 gets
// its own port, served by the very same handler.
import http from "node:http";
import http2 from "node:http2";
import { parseArgs } from "node:util";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { RouteGuide } from "../../gen/route_guide_pb.js";
import { loadDirectory } from "../../src/routeguide/directory.js";
import { createRouteGuideService } from "../../src/routeguide/service.js";

const { values } = parseArgs({
  options: { port: { type: "string", default: "0" }, "http1-port": { type: "string" } },
});

const service = createRouteGuideService(await loadDirectory());
const handler = connectNodeAdapter({ routes: (router) => router.service(RouteGuide, service) });

const h2 = http2.createServer(handler);
const h1 = values["http1-port"] === undefined ? undefined : http.createServer(handler);
const port = await listen(h2, Number(values.port));
if (h1) await listen(h1, Number(values["http1-port"]));
console.log(`Server started on port ${port}`);

for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => process.exit(0));
}

function listen(server: http.Server | http2.Http2Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => {
      const address = server.address();
      resolve(typeof address === "object" && address ? address.port : port);
    });
  });
}
