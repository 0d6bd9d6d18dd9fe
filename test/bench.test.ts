import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { repo, runToEnd } from "./support/server-process.js";

// `npm run bench -- --quick`, for real but as short as it goes: one workload on one peer, 1 s runs.

const h2load = spawnSync("h2load", ["--version"], { stdio: "ignore" }).status === 0;
// In CI a missing tool is a failure, not a skip (scripts/setup.sh installs it).
const skip = h2load || process.env.CI === "true" ? false : "needs h2load (apt-get install nghttp2-client)";

describe("npm run bench -- --quick", { skip }, () => {
  it("writes its results to bench/results/quick/, leaving the committed ones alone", async () => {
    const committed = join(repo, "bench", "results", "latest.json");
    const before = await readFile(committed, "utf8");
    const { code, stdout, stderr } = await runToEnd(["--quick", "--only", "grpc-latency", "--peers", "bare", "--seconds", "1"], {
      command: [process.execPath, "--import", "tsx", "bench/run.ts"],
    });
    assert.equal(code, 0, stderr);
    const quick = join(repo, "bench", "results", "quick");
    assert.match(stdout, new RegExp(`wrote ${quick}/latest\\.\\{json,md,svg\\}`));
    assert.equal(await readFile(committed, "utf8"), before);
    const report = JSON.parse(await readFile(join(quick, "latest.json"), "utf8")) as { meta: { quick: boolean; startedAt: string } };
    assert.equal(report.meta.quick, true);
    assert.ok(stdout.includes(report.meta.startedAt), "the quick report is this run's");
  });
});
