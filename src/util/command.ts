/**
 * Shell command templates (`trainer.command`, `sampler.launch.command`): `{name}` placeholders filled
 * with shell-quoted values, run by `sh -c` in a process group of their own, so that stopping one stops
 * everything it started.
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

/** Starts `sh -c command` as the leader of a new process group. */
export function startShell(command: string, options: ShellOptions): ChildProcess {
  const fd = openSync(options.logFile, "a");
  try {
    return spawn("sh", ["-c", command], {
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
