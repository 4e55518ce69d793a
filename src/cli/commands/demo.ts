import { join, resolve } from "node:path";
import type { Command } from "commander";
import { DEMO_TASKS, type DemoSummary, type DemoTask, runDemo } from "../../demo/demo.js";
import { DnoError } from "../../util/errors.js";
import { stageProgress } from "../stage-progress.js";
import { writeRunReport } from "./report.js";

export function summaryTable(s: DemoSummary): string {
  const f = (x: number | null) => (x === null ? "  –  " : x.toFixed(3));
  const lines = [
    " t | vs prev | vs SFT | vs teacher | accuracy | exploitability | pairs T>S S>T S>S | seconds",
    ...s.iterations.map(
      (it) =>
        `${String(it.t).padStart(2)} | ${f(it.winrate_vs_prev).padStart(7)} | ${f(it.winrate_vs_sft).padStart(6)} | ${f(it.winrate_vs_teacher).padStart(10)} | ${f(it.accuracy).padStart(8)} | ${f(it.exploitability).padStart(14)} | ${String(it.pairs.teacher_over_student).padStart(7)} ${String(it.pairs.student_over_teacher).padStart(3)} ${String(it.pairs.student_over_student).padStart(3)} | ${it.seconds.toFixed(1).padStart(7)}`,
    ),
    ...(s.mixture
      ? [
          `mixture of pi_1..pi_${s.mixture.iterates} (Algorithm 1's output): vs last ${f(s.mixture.winrate_vs_last)}, vs SFT ${f(s.mixture.winrate_vs_sft)}, vs teacher ${f(s.mixture.winrate_vs_teacher)}, accuracy ${f(s.mixture.accuracy)}, exploitability ${f(s.mixture.exploitability)}`,
        ]
      : []),
    `total ${s.total_seconds.toFixed(1)} s of stage work, ${s.oracle_calls} oracle judgments, final weights sha256 ${s.final_weights_sha256}`,
  ];
  return lines.join("\n");
}

export function register(program: Command): void {
  program
    .command("demo")
    .description(
      "the whole DNO loop on a built-in task: a tiny Llama trained from scratch, 3 iterations, on CPU",
    )
    .option("--out <dir>", "run directory (an existing one is resumed)", "dno-demo")
    .option(
      "--task <name>",
      `built-in task: ${DEMO_TASKS.join(" (word reversal), ")} (arithmetic chains)`,
      "reverse",
    )
    .action(async (flags: { out: string; task: string }) => {
      if (!(DEMO_TASKS as readonly string[]).includes(flags.task)) {
        throw new DnoError(`--task: unknown task "${flags.task}"; expected one of ${DEMO_TASKS.join(", ")}`);
      }
      const ui = stageProgress();
      const started = performance.now();
      try {
        const { summary } = await runDemo({
          out: flags.out,
          task: flags.task as DemoTask,
          progress: ui.progress,
          events: ui.events,
          warn: ui.warn,
        });
        ui.stop();
        const report = await writeRunReport(flags.out);
        process.stdout.write(`${summaryTable(summary)}\n`);
        process.stdout.write(`wall time ${((performance.now() - started) / 1000).toFixed(1)} s\n`);
        process.stdout.write(`summary: ${resolve(join(flags.out, "summary.json"))}\nreport: ${report}\n`);
      } finally {
        ui.stop();
      }
    });
}
