// The real server as a process (`node --import tsx src/main.ts`, or `npm start`),
// with its stdout read line by line: the start line, then the JSON log.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { after } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";

export const repo = new URL("../..", import.meta.url).pathname;

export type LogEntry = Record<string, unknown> & { msg?: string; worker?: number; pid?: number };

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  /** Every JSON log line so far. */
  readonly log: LogEntry[];
  /** Resolves with the exit code (or the signal's name) once the process has exited. */
  readonly exited: Promise<number | string>;
  /** Waits (bounded) for a log line `match` accepts, and returns it. */
  waitForLog(match: (entry: LogEntry) => boolean, what: string): Promise<LogEntry>;
}

const spawned = new Set<ChildProcess>();
// A failed test must not leave a server (or its workers, which exit with their primary) behind.
after(() => {
  for (const child of spawned) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** Starts `file args` (by default the server, on this Node) and waits for "Server started on port N". */
export async function startServerProcess(
  args: string[],
  { command = [process.execPath, "--import", "tsx", "src/main.ts"] }: { command?: string[] } = {},
): Promise<ServerProcess> {
  const child = spawn(command[0]!, [...command.slice(1), ...args], { cwd: repo, stdio: ["ignore", "pipe", "pipe"] });
  spawned.add(child);
  const exited = new Promise<number | string>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal!)));
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
  const log: LogEntry[] = [];
  let port: number | undefined;
  const lines = createInterface({ input: child.stdout! });
  const started = new Promise<void>((resolve, reject) => {
    lines.on("line", (line) => {
      const match = /^Server started on port (\d+)$/.exec(line);
      if (match) {
        port = Number(match[1]);
        resolve();
      } else if (line.startsWith("{")) {
        log.push(JSON.parse(line) as LogEntry);
      }
    });
    void exited.then((code) => reject(new Error(`the server exited (${code}) before it started: ${stderr}`)));
  });
  await started;
  return {
    child,
    port: port!,
    log,
    exited,
    async waitForLog(match, what) {
      for (let i = 0; i < 1000; i++) {
        const entry = log.find(match);
        if (entry !== undefined) return entry;
        await sleep(10);
      }
      throw new Error(`no log line ${what} in ${JSON.stringify(log)}`);
    },
  };
}

/** Runs a TypeScript entry point to its end; its exit code and output. */
export async function runToEnd(
  args: string[],
  { command = [process.execPath, "--import", "tsx", "src/main.ts"], env }: { command?: string[]; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | string; stdout: string; stderr: string }> {
  const child = spawn(command[0]!, [...command.slice(1), ...args], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
    ...(env && { env: { ...process.env, ...env } }),
  });
  spawned.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => (stdout += chunk));
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk));
  const [code, signal] = (await once(child, "close")) as [number | null, string | null];
  return { code: code ?? signal!, stdout, stderr };
}
