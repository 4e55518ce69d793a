/** A tiny demo-task run directory for pipeline tests, and the CLI to run it (or kill it). */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../src/demo/task.js";
import { toJsonl } from "../src/util/jsonl.js";

export const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));

/** The demo's preference, plus a line appended to calls.log per call: what the oracle was really asked. */
const ORACLE = `import { appendFileSync } from "node:fs";
import { prefer as demo } from ${JSON.stringify(new URL("../src/demo/oracle.js", import.meta.url).href)};
export function prefer(prompt, a, b) {
  appendFileSync(new URL("./calls.log", import.meta.url), JSON.stringify([prompt, a, b]) + "\\n");
  return demo(prompt, a, b);
}
`;

/** A fresh directory with sft/prompts/validation/eval files, oracle.mjs and `config` as dno.yaml. */
export function setupRun(config: string, prefix = "dno-run-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const words = randomWords(11, 80, DEFAULT_TASK);
  const rows = (from: number, n: number, name: string) =>
    words
      .slice(from, from + n)
      .map((w, i) => ({ id: `${name}${i}`, prompt: promptOf(w), gold: teacherAnswer(w, 11, DEFAULT_TASK) }));
  writeFileSync(join(dir, "sft.jsonl"), toJsonl(rows(0, 40, "s")));
  writeFileSync(join(dir, "prompts.jsonl"), toJsonl(rows(40, 24, "p")));
  writeFileSync(join(dir, "validation.jsonl"), toJsonl(rows(64, 6, "v")));
  writeFileSync(join(dir, "eval.jsonl"), toJsonl(rows(70, 10, "e")));
  writeFileSync(join(dir, "oracle.mjs"), ORACLE);
  writeFileSync(join(dir, "dno.yaml"), config);
  return dir;
}

export function dno(dir: string, ...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8" });
}

/** Starts `dno run` in `dir`; once `ready()` holds (polled), kills it with SIGKILL, and resolves when it died. */
export function killRunWhen(dir: string, env: NodeJS.ProcessEnv, ready: () => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "run", "--config", "dno.yaml"], { cwd: dir, env });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const poll = setInterval(() => {
      if (!ready()) return;
      clearInterval(poll);
      // a moment into the work that made it ready
      setTimeout(() => child.kill("SIGKILL"), 50);
    }, 10);
    child.on("exit", (code, signal) => {
      clearInterval(poll);
      if (signal === "SIGKILL") resolve();
      else reject(new Error(`dno run ended before the kill (${code}): ${err}`));
    });
  });
}

/** Running (an exited process not yet reaped, a zombie, is not). */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

/** Whether `pid` stops running within `ms` (a bound for a loaded machine, not a speed check). */
export async function endsWithin(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    await sleep(100);
  }
  return true;
}
