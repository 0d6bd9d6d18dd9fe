import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { runToEnd, startServerProcess, type ServerProcess } from "./support/server-process.js";
import { throwawayCertificate, type Certificate } from "./support/tls.js";

const execFileAsync = promisify(execFile);
const tsx = ["--import", "tsx"];

/** Runs a TypeScript entry point with this Node; resolves with its exit code and output. */
async function runTs(file: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [...tsx, file, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** Starts `src/main.ts` as `npm start` does and waits for its start line. */
async function startMain(args: string[]): Promise<{ child: ChildProcess; port: number; lines: string[] }> {
  const child = spawn(process.execPath, [...tsx, "src/main.ts", ...args], { stdio: ["ignore", "pipe", "inherit"] });
  const lines: string[] = [];
  const reader = createInterface({ input: child.stdout! });
  for await (const line of reader) {
    lines.push(line);
    if (lines.length === 2) break;
  }
  const port = Number(/^Server started on port (\d+)$/.exec(lines[0]!)![1]);
  return { child, port, lines };
}

const tutorialOutput = [
  "GetPerson: Alice, Age: 30, Gender: 2, Hobbies: ['reading', 'swimming'], Address: 123 Main St, New York",
  "GetPeople: Alice, Age: 30, Gender: 2, Hobbies: ['reading', 'swimming'], Address: 123 Main St, New York",
  "GetPeople: Bob, Age: 25, Gender: 1, Hobbies: ['gaming', 'cycling'], Address: 456 Elm St, Los Angeles",
  "",
].join("\n");

describe("the server process", () => {
  let server: Awaited<ReturnType<typeof startMain>>;
  before(async () => (server = await startMain(["--host", "127.0.0.1", "--port", "0"])));
  after(() => server.child.kill("SIGKILL"));

  it("runs on the project's Node 24", () => {
    assert.match(process.version, /^v24\./);
    assert.match(server.lines[1]!, new RegExp(`Node ${process.version.replaceAll(".", "\\.")}`));
  });

  it("prints the tutorial's start line, then what it serves", () => {
    assert.match(server.lines[0]!, /^Server started on port \d+$/);
    assert.match(server.lines[1]!, /gRPC, gRPC-Web and Connect.*HTTP\/1\.1 and h2c/);
  });

  for (const protocol of ["grpc", "grpc-web", "connect"]) {
    for (const json of [false, true]) {
      it(`client CLI over ${protocol}${json ? " JSON" : ""} prints the tutorial's lines byte for byte`, async () => {
        const args = ["--url", `http://127.0.0.1:${server.port}`, "--protocol", protocol, ...(json ? ["--json"] : [])];
        const result = await runTs("src/client/cli.ts", args);
        assert.equal(result.stderr, "");
        assert.equal(result.stdout, tutorialOutput);
        assert.equal(result.code, 0);
      });
    }
  }

  it("client CLI reports NOT_FOUND on one stderr line and exits non-zero", async () => {
    const result = await runTs("src/client/cli.ts", ["--url", `http://127.0.0.1:${server.port}`, "Charlie"]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr, 'error: [not_found] no person named "Charlie"\n');
  });

  it("a second server on the same port exits non-zero saying the port is taken", async () => {
    const result = await runTs("src/main.ts", ["--host", "127.0.0.1", "--port", String(server.port)]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`port ${server.port} is already in use`));
  });

  it("exits 0 on SIGTERM", async () => {
    const other = await startMain(["--host", "127.0.0.1", "--port", "0"]);
    other.child.kill("SIGTERM");
    const [code] = await once(other.child, "exit");
    assert.equal(code, 0);
  });
});

describe("the client CLI without a server", () => {
  it("reports UNAVAILABLE on one stderr line and exits non-zero", async () => {
    // Port 1 is privileged and unused here: connecting is refused at once.
    const result = await runTs("src/client/cli.ts", ["--url", "http://127.0.0.1:1"]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: \[unavailable\] .*ECONNREFUSED.*\n$/);
  });
});

describe("the client CLI against a TLS server whose CA only the user knows", () => {
  let cert: Certificate;
  let server: ServerProcess;
  before(async () => {
    cert = await throwawayCertificate();
    server = await startServerProcess(["--host", "127.0.0.1", "--port", "0", "--tls-cert", cert.certFile, "--tls-key", cert.keyFile]);
  });
  after(async () => {
    server.child.kill("SIGKILL");
    await cert.remove();
  });
  const cli = ["node_modules/.bin/node", "--import", "tsx", "src/client/cli.ts"];
  const url = () => `https://localhost:${server.port}`;

  it("without the CA: UNAVAILABLE, saying how to trust it", async () => {
    const result = await runToEnd(["--url", url()], { command: cli });
    assert.equal(result.stdout, "");
    assert.match(result.stderr, /^error: \[unavailable\] cannot verify the server's TLS certificate \(self-signed certificate\): .*NODE_EXTRA_CA_CERTS=FILE .*--ca FILE.*\n$/);
    assert.equal(result.code, 1);
  });

  for (const args of [["--protocol", "grpc"], ["--protocol", "connect", "--http1", "Alice"]]) {
    it(`with --ca over ${args.join(" ")}: the tutorial's lines`, async () => {
      const result = await runToEnd(["--url", url(), "--ca", cert.certFile, ...args], { command: cli });
      assert.equal(result.stderr, args.includes("--http1") ? "error: GetPeople is a bidirectional stream and needs HTTP/2; run without --http1\n" : "");
      assert.equal(result.stdout, args.includes("--http1") ? tutorialOutput.split("\n")[0] + "\n" : tutorialOutput);
    });
  }

  it("with NODE_EXTRA_CA_CERTS: the tutorial's lines", async () => {
    const result = await runToEnd(["--url", url()], { command: cli, env: { NODE_EXTRA_CA_CERTS: cert.certFile } });
    assert.equal(result.stderr, "");
    assert.equal(result.stdout, tutorialOutput);
    assert.equal(result.code, 0);
  });

  it("https:// to a plain-text port: UNAVAILABLE, a failed handshake", async () => {
    const plain = await startServerProcess(["--host", "127.0.0.1", "--port", "0"]);
    try {
      const result = await runToEnd(["--url", `https://127.0.0.1:${plain.port}`], { command: cli });
      assert.match(result.stderr, /^error: \[unavailable\] TLS handshake with the server failed \(wrong version number\): does it serve TLS on this port\?\n$/);
      assert.equal(result.code, 1);
    } finally {
      plain.child.kill("SIGKILL");
    }
  });

  it("--ca with a missing file: one line naming the flag", async () => {
    const result = await runToEnd(["--url", url(), "--ca", "/no/such/ca.pem"], { command: cli });
    assert.equal(result.stderr, "error: --ca /no/such/ca.pem: no such file\n");
    assert.equal(result.code, 1);
  });
});

describe("a bad data file", () => {
  it("stops the server at start with a message naming the file and the record", async () => {
    const dir = await mkdtemp(join(tmpdir(), "routeguide-cli-"));
    const file = join(dir, "people.json");
    await writeFile(file, JSON.stringify([{ name: "Alice" }, { name: "Bob", age: "old" }]));
    const result = await runTs("src/main.ts", ["--host", "127.0.0.1", "--port", "0", "--data", file]);
    assert.equal(result.code, 1);
    assert.equal(result.stdout, "");
    assert.match(result.stderr, new RegExp(`${file}.*record 2 \\("Bob"\\)`));
  });
});
