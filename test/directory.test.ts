import assert from "node:assert/strict";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DataFileError, loadDirectory } from "../src/routeguide/directory.js";

const dir = await mkdtemp(join(tmpdir(), "routeguide-data-"));
async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

describe("loadDirectory", () => {
  it("defaults to the tutorial's Alice and Bob", async () => {
    const directory = await loadDirectory();
    assert.deepEqual(directory.names(), ["Alice", "Bob"]);
    assert.equal(directory.get("Bob")?.address?.city, "Los Angeles");
  });

  it("loads a file of Person records in protobuf JSON form", async () => {
    const path = await file("ok.json", JSON.stringify([{ name: "Dana", age: 41, gender: "FEMALE", hobbies: ["chess"] }, { name: "Eve", gender: 1 }]));
    const directory = await loadDirectory(path);
    assert.deepEqual(directory.names(), ["Dana", "Eve"]);
    assert.equal(directory.get("Eve")?.gender, 1);
  });

  const bad: Array<[string, string, RegExp]> = [
    ["not JSON", "{", /not valid JSON/],
    ["not an array", '{"name":"Alice"}', /expected a JSON array/],
    ["an unknown field", '[{"name":"Alice"},{"name":"Bob","nickname":"B"}]', /record 2 \("Bob"\).*nickname/],
    ["a wrong type", '[{"name":"Alice","age":"thirty"}]', /record 1 \("Alice"\).*age/],
    ["an unknown enum value", '[{"name":"Alice","gender":"OTHER"}]', /record 1 \("Alice"\).*Gender.*OTHER/],
    ["a duplicate name", '[{"name":"Alice"},{"name":"Alice"}]', /record 2 \("Alice"\): duplicate name/],
    // The buf.validate rules of person.proto, each named by its rule id.
    ["an empty name", '[{"name":"Alice"},{"age":3}]', /record 2: name: value is required \[required\]/],
    ["a name over 100 characters", JSON.stringify([{ name: "n".repeat(101) }]), /record 1 \("n+"\): name: .* \[string\.max_len\]/],
    ["an age out of range", '[{"name":"Alice","age":-1}]', /record 1 \("Alice"\): age: .* \[int32\.gte_lte\]/],
    ["an undefined gender number", '[{"name":"Alice","gender":7}]', /record 1 \("Alice"\): gender: .* \[enum\.defined_only\]/],
    ["several broken rules", '[{"name":"Alice","age":200,"gender":9}]', /record 1 \("Alice"\): age: .* \[int32\.gte_lte\]; gender: .* \[enum\.defined_only\]$/],
  ];
  for (const [what, text, message] of bad) {
    it(`rejects a file with ${what}, naming the file and the record`, async () => {
      const path = await file(`${what.replaceAll(" ", "-")}.json`, text);
      await assert.rejects(loadDirectory(path), (err: Error) => {
        assert.ok(err instanceof DataFileError);
        assert.ok(err.message.includes(path), err.message);
        assert.match(err.message, message);
        return true;
      });
    });
  }

  it("rejects a missing file", async () => {
    await assert.rejects(loadDirectory(join(dir, "missing.json")), /cannot read/);
  });
});
