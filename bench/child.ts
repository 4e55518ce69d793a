/** Bench measurements that run in a child process of their own, so that its peak RSS is theirs alone. */
import { spawnSync } from "node:child_process";
import { DnoError } from "../src/util/errors.js";

/** Runs `node script ...args` and returns the last line of its stdout, parsed as JSON. */
export function benchChild<T>(script: string, args: readonly string[]): T {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0)
    throw new DnoError(`bench child ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as T;
}
