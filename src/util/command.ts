/**
 * Shell command templates (`trainer.command`, `sampler.launch.command`): `{name}` placeholders filled
 * with shell-quoted values, run by `sh -c` in a process group of their own, so that stopping one stops
 * everything it started, and that group is killed when dno dies without stopping it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { DnoError } from "./errors.js";

/** Fills `{name}` placeholders; every value is single-quoted for sh. An unknown name is an error. */
export function fillTemplate(template: string, values: Record<string, string>, where: string): string {
  return template.replace(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) {
      throw new DnoError(
        `${where}: unknown placeholder {${name}} (known: ${Object.keys(values)
          .map((k) => `{${k}}`)
          .join(", ")})`,
      );
    }
    return `'${value.replaceAll("'", `'\\''`)}'`;
  });
}

/** Placeholders a template uses. */
export function templateNames(template: string): string[] {
  return [...template.matchAll(/\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]!);
}

export interface ShellOptions {
  env?: Record<string, string> | undefined;
  /** stdout and stderr are appended here. */
  logFile: string;
}

/**
 * Started as `sh -c WATCHDOG sh DNO_PID COMMAND`: a background loop in the command's process group that
 * kills the whole group once dno (DNO_PID) is gone, even by kill -9 (Node has no PR_SET_PDEATHSIG), and
 * ends by itself when the command does. The shell then becomes the command (exec keeps its pid, the
 * group's id), so its exit code and signal are the command's.
 */
const WATCHDOG = `leader=$$
(
  while kill -0 "$1" 2>/dev/null && kill -0 "$leader" 2>/dev/null; do sleep 1; done
  kill -0 "$1" 2>/dev/null || kill -KILL 0
) &
exec sh -c "$2"`;

/** Starts `sh -c command` as the leader of a new process group that dies with this process. */
export function startShell(command: string, options: ShellOptions): ChildProcess {
  const fd = openSync(options.logFile, "a");
  try {
    return spawn("sh", ["-c", WATCHDOG, "sh", String(process.pid), command], {
      env: { ...process.env, ...options.env },
      stdio: ["ignore", fd, fd],
      detached: true,
    });
  } finally {
    closeSync(fd);
  }
}

/** Runs a command to its end: its exit code, or the signal that ended it. */
export function runShell(
  command: string,
  options: ShellOptions,
): Promise<{ code: number | null; signal: string | null }> {
  const child = startShell(command, options);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code, signal) => resolve({ code, signal }));
  });
}

/** Sends `signal` to a started command's whole process group (no error if it is gone). */
export function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already exited.
  }
}
