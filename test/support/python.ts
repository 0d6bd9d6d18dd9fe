// Python grpcio peers (peers/python/*.py) for interop tests: finds Debian's
// grpcio, generates the stubs at test time, runs the scripts.
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Debian's interpreter: the `python3` on PATH may be another one, without grpcio. */
const PYTHON = "/usr/bin/python3";
const GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin";
const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const APT_PACKAGES = "python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc";

/**
 * Why the Python peers cannot run here, or undefined when they can. In CI a
 * missing toolchain is a failure, not a skip.
 */
export async function pythonSkipReason(): Promise<string | undefined> {
  const missing: string[] = [];
  await run(PYTHON, ["-c", "import grpc, google.protobuf"]).catch(() => missing.push(`${PYTHON} with grpc`));
  await run("protoc", ["--version"]).catch(() => missing.push("protoc"));
  await access(GRPC_PYTHON_PLUGIN).catch(() => missing.push(GRPC_PYTHON_PLUGIN));
  if (missing.length === 0) return undefined;
  const reason = `Python interop needs ${missing.join(", ")} (apt-get install ${APT_PACKAGES})`;
  if (process.env.CI === "true") throw new Error(reason);
  return reason;
}

export interface PythonServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface PythonPeers {
  /** Runs peers/python/SCRIPT with ARGS; resolves to its stdout, rejects if it exits non-zero. */
  run(script: "client.py" | "interleave.py", ...args: string[]): Promise<string>;
  /** Starts peers/python/server.py (the tutorial's server) on a free loopback port. */
  startServer(): Promise<PythonServer>;
  /** Removes the generated stubs. */
  dispose(): Promise<void>;
}

/** Generates the Python stubs from proto/ into a fresh git-ignored folder. */
export async function preparePythonPeers(): Promise<PythonPeers> {
  await mkdir(join(ROOT, "test-output"), { recursive: true });
  // A folder per run, so test files running in parallel never share half-written stubs.
  const stubs = await mkdtemp(join(ROOT, "test-output", "python-stubs-"));
  // validate.proto imports well-known types that Debian's protoc does not ship as .proto files:
  // protoc reads buf's compiled image of proto/ (which carries them) instead of the sources.
  const image = join(stubs, "proto.binpb");
  await run(join(ROOT, "node_modules", ".bin", "buf"), ["build", "proto", "-o", image], { cwd: ROOT });
  await run(
    "protoc",
    [
      `--descriptor_set_in=${image}`,
      `--python_out=${stubs}`,
      `--pyi_out=${stubs}`,
      `--grpc_python_out=${stubs}`,
      `--plugin=protoc-gen-grpc_python=${GRPC_PYTHON_PLUGIN}`,
      "person.proto",
      "route_guide.proto",
      // Imported for its buf.validate options: Python must be able to load it, though it checks no rule.
      "buf/validate/validate.proto",
    ],
    { cwd: ROOT },
  );
  // The generated modules import each other by bare name.
  const env = { ...process.env, PYTHONPATH: stubs, PYTHONUNBUFFERED: "1" };
  const script = (name: string) => join(ROOT, "peers", "python", name);

  return {
    async run(name, ...args) {
      // The tutorial's client sets no deadline: bound it here so a stuck call fails the test.
      const { stdout } = await run(PYTHON, [script(name), ...args], { env, timeout: 30_000 });
      return stdout;
    },

    async startServer() {
      const child = spawn(PYTHON, [script("server.py"), "0"], { env, stdio: ["ignore", "pipe", "inherit"] });
      const exited = once(child, "exit");
      const lines = createInterface({ input: child.stdout });
      const started = (async () => {
        for await (const line of lines) {
          const match = /^Server started on port (\d+)$/.exec(line);
          if (match) return Number(match[1]);
        }
        throw new Error("peers/python/server.py ended its output without reporting a port");
      })();
      const port = await Promise.race([
        started,
        exited.then(([code]) => Promise.reject(new Error(`peers/python/server.py exited with ${code}`))),
      ]);
      return {
        port,
        async close() {
          if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
          await exited;
        },
      };
    },

    dispose: () => rm(stubs, { recursive: true, force: true }),
  };
}
