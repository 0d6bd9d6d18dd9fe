// The Debian packages the benchmark drives servers with, installed when missing.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

interface Tool {
  /** How to tell it is installed: a command that exits 0, or a file that exists. */
  probe: { command: string; args: string[] } | { file: string };
  apt: string;
}

const tools = {
  h2load: { probe: { command: "h2load", args: ["--version"] }, apt: "nghttp2-client" },
  wrk: { probe: { file: "/usr/bin/wrk" }, apt: "wrk" },
  "python3-grpcio": { probe: { command: "/usr/bin/python3", args: ["-c", "import grpc, google.protobuf"] }, apt: "python3-grpcio python3-protobuf" },
  protoc: { probe: { command: "protoc", args: ["--version"] }, apt: "protobuf-compiler" },
  grpc_python_plugin: { probe: { file: "/usr/bin/grpc_python_plugin" }, apt: "protobuf-compiler-grpc" },
} satisfies Record<string, Tool>;

export type ToolName = keyof typeof tools;

function installed(tool: Tool): boolean {
  if ("file" in tool.probe) return existsSync(tool.probe.file);
  return spawnSync(tool.probe.command, tool.probe.args, { stdio: "ignore" }).status === 0;
}

/**
 * Installs the missing tools with apt-get when running as root; otherwise
 * (or when apt-get fails) throws with the command to run by hand.
 */
export function ensureTools(names: ToolName[]): void {
  const missing = names.filter((name) => !installed(tools[name]));
  if (missing.length === 0) return;
  const packages = [...new Set(missing.flatMap((name) => tools[name].apt.split(" ")))];
  const hint = `apt-get install -y ${packages.join(" ")}`;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing ${missing.join(", ")}: install with \`sudo ${hint}\``);
  }
  console.log(`installing ${packages.join(", ")} for ${missing.join(", ")} ...`);
  // Other apt users on the machine may hold the lock for a while: wait for it rather than fail.
  const apt = (...args: string[]) =>
    spawnSync("apt-get", ["-o", "DPkg::Lock::Timeout=300", ...args], { stdio: ["ignore", "ignore", "inherit"] }).status === 0;
  // A fresh machine has empty package lists: update once and retry.
  const ok = apt("install", "-y", ...packages) || (apt("update") && apt("install", "-y", ...packages));
  const still = missing.filter((name) => !installed(tools[name]));
  if (!ok || still.length > 0) throw new Error(`could not install ${still.join(", ")}: try \`${hint}\``);
}
