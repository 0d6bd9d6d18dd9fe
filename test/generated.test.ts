import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => relative(dir, join(e.parentPath, e.name))).sort();
}

describe("generated code", () => {
  it("gen/ is what buf generate makes from proto/ (run `npm run generate` if this fails)", async () => {
    const out = await mkdtemp(join(tmpdir(), "routeguide-gen-"));
    await run("buf", ["generate", "--output", out]);
    const fresh = join(out, "gen");
    const expected = await listFiles(fresh);
    assert.deepEqual(await listFiles("gen"), expected);
    for (const file of expected) {
      assert.equal(await readFile(join("gen", file), "utf8"), await readFile(join(fresh, file), "utf8"), `gen/${file} is stale`);
    }
  });

  it("proto/ passes buf lint", async () => {
    await run("buf", ["lint"]);
  });
});
