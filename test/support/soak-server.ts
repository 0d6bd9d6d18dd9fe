import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { startTestServer } from "./server.js";

// The server of test/soak.test.ts, in a process of its own so that its
// memory is measured apart from the clients'. The parent asks over IPC:
// "measure" forces a full GC and answers with process.memoryUsage().

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const server = await startTestServer();
process.send!({ url: server.url });
process.on("message", async (message: string) => {
  if (message === "measure") {
    // Twice, with a pause: closed streams and sessions release objects over a couple of turns.
    gc();
    await new Promise((resolve) => setTimeout(resolve, 100));
    gc();
    process.send!({ memory: process.memoryUsage() });
  } else if (message === "close") {
    await server.close();
    process.exit(0);
  }
});
