// Interop with Python grpcio: the tutorial's own client against our server,
// and our client and CLI against the tutorial's own server.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { create } from "@bufbuild/protobuf";
import { PersonSchema, Person_Gender } from "../gen/person_pb.js";
import { createRouteGuideClient } from "../src/client/client.js";
import type { RunningServer } from "../src/server.js";
import { startTestServer } from "./support/server.js";
import { type PythonPeers, type PythonServer, preparePythonPeers, pythonSkipReason } from "./support/python.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("..", import.meta.url));

// What the tutorial shows client.py printing (minus the blank line its code never prints).
const TUTORIAL_OUTPUT = [
  "GetPerson: Alice, Age: 30, Gender: 2, Hobbies: ['reading', 'swimming'], Address: 123 Main St, New York",
  "GetPeople: Alice, Age: 30, Gender: 2, Hobbies: ['reading', 'swimming'], Address: 123 Main St, New York",
  "GetPeople: Bob, Age: 25, Gender: 1, Hobbies: ['gaming', 'cycling'], Address: 456 Elm St, Los Angeles",
];

// Protobuf JSON as interleave.py prints it (enums as numbers).
const ALICE_JSON = {
  name: "Alice",
  age: 30,
  gender: 2,
  hobbies: ["reading", "swimming"],
  address: { street: "123 Main St", city: "New York" },
};
const BOB_JSON = {
  name: "Bob",
  age: 25,
  gender: 1,
  hobbies: ["gaming", "cycling"],
  address: { street: "456 Elm St", city: "Los Angeles" },
};

const lines = (stdout: string) => stdout.split("\n").filter((line) => line !== "");

/** Our CLI with its default names (Alice, Bob, Charlie); stdout as lines. */
async function runCli(url: string, ...flags: string[]): Promise<string[]> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "src/client/cli.ts", "--url", url, ...flags], {
    cwd: ROOT,
  });
  return lines(stdout);
}

const skip = await pythonSkipReason();

// Bounds a hung peer; nothing here asserts on time.
describe("Python grpcio interop", { skip, timeout: 120_000 }, () => {
  let python: PythonPeers;
  let ours: RunningServer;
  let tutorialServer: PythonServer;

  before(async () => {
    python = await preparePythonPeers();
    ours = await startTestServer();
    tutorialServer = await python.startServer();
  });

  after(async () => {
    await tutorialServer?.close();
    await ours?.close();
    await python?.dispose();
  });

  describe("the tutorial's client.py", () => {
    test("prints the tutorial's output against our server, skipping Charlie", async () => {
      const stdout = await python.run("client.py", `127.0.0.1:${ours.port}`);
      assert.deepEqual(lines(stdout), TUTORIAL_OUTPUT);
    });

    test("prints the same against the tutorial's server (the Python peer is faithful)", async () => {
      const stdout = await python.run("client.py", `127.0.0.1:${tutorialServer.port}`);
      assert.deepEqual(lines(stdout), TUTORIAL_OUTPUT);
    });
  });

  test("interleave.py gets each GetPeople reply before it sends the next name; errors carry gRPC codes", async () => {
    const events = lines(await python.run("interleave.py", `127.0.0.1:${ours.port}`)).map((line) => JSON.parse(line));
    assert.deepEqual(events, [
      { rpc: "GetPerson", name: "Alice", person: ALICE_JSON },
      { rpc: "GetPerson", name: "Nobody", code: "NOT_FOUND" },
      { rpc: "GetPerson", name: "", code: "INVALID_ARGUMENT" },
      { rpc: "GetPeople", sent: "Alice" },
      { rpc: "GetPeople", received: ALICE_JSON },
      { rpc: "GetPeople", sent: "Bob" },
      { rpc: "GetPeople", received: BOB_JSON },
      { rpc: "GetPeople", sent: "Alice" },
      { rpc: "GetPeople", received: ALICE_JSON },
      { rpc: "GetPeople", sent: "Charlie" },
      { rpc: "GetPeople", code: "OK" },
    ]);
  });

  test("our CLI prints what client.py prints, even for hobbies Python's repr() escapes", async () => {
    // Code points with a stable Unicode category: Debian's Python and Node ship different Unicode versions.
    const hobbies = [
      "it's", 'say "hi"', "both ' and \"", "back\\slash", "tab\t", "new\nline", "bell\x07", "del\x7f",
      "c1\x85", "nbsp\u00a0", "soft\u00adhyphen", "zwsp\u200b", "line\u2028sep", "ideographic\u3000space",
      "private\ue000", "tag\u{e0001}", "é ü 日本", "emoji 😀", "",
    ];
    const dir = await mkdtemp(join(tmpdir(), "routeguide-interop-"));
    const dataFile = join(dir, "people.json");
    await writeFile(dataFile, JSON.stringify([{ ...ALICE_JSON, hobbies }]));
    const server = await startTestServer({ dataFile });
    try {
      const printedByPython = lines(await python.run("client.py", `127.0.0.1:${server.port}`));
      assert.equal(printedByPython.length, 2);
      assert.deepEqual(await runCli(server.url), printedByPython);
    } finally {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  describe("our client against the tutorial's Python server", () => {
    const alice = create(PersonSchema, {
      name: "Alice",
      age: 30,
      gender: Person_Gender.FEMALE,
      hobbies: ["reading", "swimming"],
      address: { street: "123 Main St", city: "New York" },
    });

    test("GetPerson over gRPC", async () => {
      const client = createRouteGuideClient({ baseUrl: `http://127.0.0.1:${tutorialServer.port}`, protocol: "grpc" });
      assert.deepEqual(await client.getPerson({ name: "Alice" }), alice);
      // The tutorial's server answers unknown names with a placeholder, not an error.
      assert.deepEqual(await client.getPerson({ name: "Charlie" }), create(PersonSchema, { name: "Not Found" }));
    });

    test("GetPeople over gRPC skips unknown names", async () => {
      const client = createRouteGuideClient({ baseUrl: `http://127.0.0.1:${tutorialServer.port}`, protocol: "grpc" });
      const names = (async function* () {
        yield* [{ name: "Alice" }, { name: "Charlie" }, { name: "Bob" }];
      })();
      const people = [];
      for await (const person of client.getPeople(names)) people.push(person.name);
      assert.deepEqual(people, ["Alice", "Bob"]);
    });

    test("the CLI prints the same against the tutorial's server as against ours", async () => {
      const againstPython = await runCli(`http://127.0.0.1:${tutorialServer.port}`, "--protocol", "grpc");
      assert.deepEqual(againstPython, await runCli(ours.url, "--protocol", "grpc"));
      assert.deepEqual(againstPython, TUTORIAL_OUTPUT);
    });
  });
});
