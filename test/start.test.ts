import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { throwawayCertificate, type Certificate } from "./support/tls.js";
import { repo, runToEnd, startServerProcess } from "./support/server-process.js";

// What a new user meets first: `npm start`, its help, its mistakes, its first lines.

/** Every process below `pid`, from /proc's children lists. */
async function descendants(pid: number): Promise<number[]> {
  const children = await readFile(`/proc/${pid}/task/${pid}/children`, "utf8").catch(() => "");
  const pids = children.split(" ").filter(Boolean).map(Number);
  return [...pids, ...(await Promise.all(pids.map(descendants))).flat()];
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function portIsFree(port: number): Promise<boolean> {
  const server = net.createServer();
  try {
    server.listen(port, "127.0.0.1");
    await once(server, "listening");
    return true;
  } catch {
    return false;
  } finally {
    server.close();
  }
}

describe("npm start", () => {
  it("stops the server on SIGTERM to npm's own pid: the port is free and no process is left", async () => {
    const server = await startServerProcess(["--port", "0", "--host", "127.0.0.1"], { command: ["npm", "start", "--"] });
    const below = await descendants(server.child.pid!);
    assert.ok(below.length > 0);
    // What a supervisor or a container runtime does: signal the process it started, and only that one.
    server.child.kill("SIGTERM");
    assert.equal(await server.exited, 0);
    assert.deepEqual(below.filter(alive), [], "processes left behind");
    assert.ok(await portIsFree(server.port), `port ${server.port} is still held`);
  });
});

describe("--help", () => {
  // The flags the server accepts, read from the parseArgs table in src/config.ts, so that a new flag cannot miss its line.
  let flags: string[];
  before(async () => {
    const source = await readFile(join(repo, "src/config.ts"), "utf8");
    const table = /options: \{\n([\s\S]*?)\n {6}\},\n/.exec(source)![1]!;
    flags = [...table.matchAll(/^\s+"?([a-z][a-z0-9-]*)"?: \{ type: "(string|boolean)"/gm)].map(([, name, type]) =>
      // Boolean flags are negatable (allowNegative); --no-fast-path is the one a user types.
      type === "boolean" && name !== "help" ? `--no-${name}|--${name}` : `--${name}`,
    );
    assert.ok(flags.length > 15, `found only ${flags.join(" ")}`);
  });

  for (const flag of ["--help", "-h"]) {
    it(`${flag} prints every flag and environment variable to stdout and exits 0`, async () => {
      const { code, stdout, stderr } = await runToEnd([flag]);
      assert.equal(code, 0);
      assert.equal(stderr, "");
      for (const name of flags) assert.match(stdout, new RegExp(`(${name})\\b`), `${name} is missing from the help`);
      for (const variable of ["PORT", "LOG_LEVEL", "OTEL_\\*"]) assert.match(stdout, new RegExp(`^ +${variable} `, "m"));
      assert.match(stdout, /^ +-h, --help /m);
    });
  }
});

describe("mistakes at start: one line naming the flag, exit 1", () => {
  let cert: Certificate;
  let other: Certificate;
  before(async () => ([cert, other] = await Promise.all([throwawayCertificate(), throwawayCertificate()])));
  after(() => Promise.all([cert.remove(), other.remove()]));

  const expectOneLine = async (args: string[], line: RegExp) => {
    const { code, stdout, stderr } = await runToEnd(["--host", "127.0.0.1", "--port", "0", ...args]);
    assert.equal(stdout, "");
    assert.match(stderr, line);
    assert.equal(stderr.split("\n").length, 2, `more than one line: ${stderr}`);
    assert.equal(code, 1);
  };

  it("a missing TLS file", async () => {
    const missing = join(tmpdir(), "routeguide-no-such-cert.pem");
    await expectOneLine(["--tls-cert", missing, "--tls-key", cert.keyFile], new RegExp(`^--tls-cert ${missing}: no such file\n$`));
    await expectOneLine(["--tls-cert", cert.certFile, "--tls-key", missing], new RegExp(`^--tls-key ${missing}: no such file\n$`));
  });

  it("certificate and key swapped", async () => {
    await expectOneLine(["--tls-cert", cert.keyFile, "--tls-key", cert.certFile], /^--tls-cert .*key\.pem holds no certificate and --tls-key .*cert\.pem holds one: are the two swapped\?\n$/);
  });

  it("a key that is not the certificate's", async () => {
    await expectOneLine(
      ["--tls-cert", cert.certFile, "--tls-key", other.keyFile],
      new RegExp(`^--tls-key ${other.keyFile} is not the key of the certificate in --tls-cert ${cert.certFile}\n$`),
    );
  });

  it("--host with an address this machine does not have, or a name that does not resolve", async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never assigned to a host.
    await expectOneLine(["--host", "192.0.2.1"], /^error: --host 192\.0\.2\.1 is not an address of this machine\n$/);
    await expectOneLine(["--host", "no-such-host.invalid"], /^error: --host no-such-host\.invalid does not resolve to an address\n$/);
  });

  it("with --workers 2, still one line from the primary", async () => {
    await expectOneLine(["--workers", "2", "--host", "192.0.2.1"], /^error: --host 192\.0\.2\.1 is not an address of this machine\n$/);
    await expectOneLine(["--workers", "two"], /^invalid --workers "two": expected a whole number from 1, or auto\n$/);
  });
});

describe("the start lines", () => {
  it('say "1 person" for one', async () => {
    const dir = await mkdtemp(join(tmpdir(), "routeguide-start-"));
    const file = join(dir, "people.json");
    await writeFile(file, JSON.stringify([{ name: "Alice", age: 30 }]));
    const server = await startServerProcess(["--host", "127.0.0.1", "--port", "0", "--data", file]);
    try {
      const line = await server.waitForLog((e) => /^Serving RouteGuide/.test(e.msg ?? ""), "about what it serves");
      assert.match(line.msg!, /; 1 person; /);
    } finally {
      server.child.kill("SIGKILL");
      await rm(dir, { recursive: true });
    }
  });
});
