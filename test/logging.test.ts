// The log on stdout as `npm start` writes it when no terminal watches:
// batched, yet every line whole, in order, and out before the process exits;
// and a closed stdout does not take the server down.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

// Lines around the 64 KiB batch: small ones, ones too big for a batch, multi-byte text filling one unevenly.
const messages = [
  ...Array.from({ length: 3_000 }, (_, i) => `call ${i}`),
  "x".repeat(30_000),
  "é".repeat(21_000),
  "日本語".repeat(10_000),
  ...Array.from({ length: 500 }, (_, i) => `${"ü".repeat(i)} ${i}`),
  "last",
];

/** Logs `messages` at info through createLogger's stdout destination in a child process, then exits. */
async function logInChild(exit: "return" | "process.exit"): Promise<string[]> {
  const folder = await mkdtemp(join(tmpdir(), "routeguide-log-"));
  try {
    const file = join(folder, "messages.json");
    await writeFile(file, JSON.stringify(messages));
    const script = `
      const { readFileSync } = await import("node:fs");
      const { createLogger } = await import("./src/observability/logging.ts");
      const logger = await createLogger("info");
      for (const msg of JSON.parse(readFileSync(${JSON.stringify(file)}, "utf8"))) logger.info(msg);
      ${exit === "process.exit" ? "process.exit(0);" : ""}
    `;
    const { stdout } = await execFileAsync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      maxBuffer: 64 << 20,
      timeout: 30_000,
    });
    assert.ok(stdout.endsWith("\n"), "the last line is whole");
    return stdout.slice(0, -1).split("\n").map((line) => JSON.parse(line).msg);
  } finally {
    await rm(folder, { recursive: true });
  }
}

describe("the log on stdout", () => {
  it("keeps every line whole and in order when the process ends by itself", async () => {
    assert.deepEqual(await logInChild("return"), messages);
  });

  it("writes the last batch out on process.exit(), as after a signal", async () => {
    assert.deepEqual(await logInChild("process.exit"), messages);
  });

  it("stops logging, and the server carries on, when nobody reads stdout any more", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts", "--host", "127.0.0.1", "--port", "0"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const [first] = (await once(createInterface({ input: child.stdout! }), "line")) as [string];
      const url = `http://127.0.0.1:${/port (\d+)/.exec(first)![1]}/RouteGuide/GetPerson`;
      child.stdout!.destroy(); // the reading end of the pipe is gone: writes fail with EPIPE
      for (let i = 0; i < 5; i++) {
        const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: '{"name":"Bob"}' });
        assert.equal((await res.json()).name, "Bob");
        await sleep(150); // past the batch's 100 ms, so each line is written
      }
      assert.equal(child.exitCode, null, "the server is still running");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
