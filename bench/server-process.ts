// A peer server running as its own process, watched through /proc: CPU time
// (utime + stime, all threads) and peak resident memory (VmHWM), summed over
// the process and its children (the workers of `--workers N`).
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

export interface Command {
  file: string;
  args: string[];
  env?: Record<string, string>;
}

export interface ServerProcess {
  readonly pid: number;
  readonly port: number;
  readonly logFile: string;
  /** CPU seconds the process and its children have used so far, user + system, all threads. */
  cpuSeconds(): number;
  /** Peak resident set size in bytes since start or the last resetPeakRss(), summed over the processes. */
  peakRssBytes(): number;
  /** Starts a new peak-RSS window (Linux clear_refs "5"); false when the kernel refuses. */
  resetPeakRss(): boolean;
  stop(): Promise<void>;
}

const startTimeoutMs = 60_000;
const stopTimeoutMs = 10_000;
const clockTicksPerSecond = 100; // USER_HZ: 100 on every Linux ABI Node runs on

/** Spawns the command with stdout/stderr going straight to logFile, and waits for "Server started on port N". */
export async function startServerProcess(command: Command, cwd: string, logFile: string): Promise<ServerProcess> {
  // The server writes its log to a file itself, so draining it costs the harness nothing.
  const log = openSync(logFile, "w");
  const child = spawn(command.file, command.args, {
    cwd,
    env: { ...process.env, ...command.env },
    stdio: ["ignore", log, log],
  });
  closeSync(log);
  // Resolves on exit, or on a spawn failure (no exit event follows one).
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  const pid = child.pid;
  if (pid === undefined) {
    await exited;
    throw new Error(`cannot start ${command.file}: ${tail(logFile)}`);
  }
  const port = await waitForPort(child, logFile);
  return {
    pid,
    port,
    logFile,
    cpuSeconds() {
      let ticks = 0;
      for (const p of processTree(pid)) {
        // Fields after the ")" that closes the command name: utime, stime, cutime, cstime are the 12th to 15th
        // (cutime and cstime: children that have exited, such as a restarted worker).
        const stat = readFileSync(`/proc/${p}/stat`, "latin1");
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      }
      return ticks / clockTicksPerSecond;
    },
    peakRssBytes() {
      let bytes = 0;
      for (const p of processTree(pid)) {
        const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${p}/status`, "latin1"));
        if (!match) throw new Error(`no VmHWM in /proc/${p}/status`);
        bytes += Number(match[1]) * 1024;
      }
      return bytes;
    },
    resetPeakRss() {
      try {
        for (const p of processTree(pid)) writeFileSync(`/proc/${p}/clear_refs`, "5");
        return true;
      } catch {
        return false;
      }
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), stopTimeoutMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function waitForPort(child: ChildProcess, logFile: string): Promise<number> {
  const deadline = Date.now() + startTimeoutMs;
  while (Date.now() < deadline) {
    const match = /Server started on port (\d+)/.exec(readFileSync(logFile, "utf8"));
    if (match) return Number(match[1]);
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`exited (${child.exitCode ?? child.signalCode}) before listening: ${tail(logFile)}`);
    }
    await sleep(50);
  }
  child.kill("SIGKILL");
  throw new Error(`did not print "Server started on port N" within ${startTimeoutMs / 1000} s: ${tail(logFile)}`);
}

/** `pid` and every process below it, from /proc's children lists (Linux 3.5+ with CONFIG_PROC_CHILDREN). */
function processTree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").split(" ").filter(Boolean).map(Number);
  } catch {
    // Gone since its parent listed it.
  }
  return [pid, ...children.flatMap(processTree)];
}

/** A free loopback port, for peers that need a second one. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

function tail(file: string): string {
  const text = readFileSync(file, "utf8").trim();
  return text === "" ? "(no output)" : text.split("\n").slice(-15).join("\n");
}
