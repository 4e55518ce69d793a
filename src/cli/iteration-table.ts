/** The per-iteration table `dno run` prints at its end: what the run achieved, one row per policy. */
import type { RunResult } from "../pipeline/run.js";

export function iterationTable(result: RunResult): string {
  const f = (x: number | null | undefined) => (x === null || x === undefined ? "–" : x.toFixed(3));
  const metricNames = [...new Set(result.evals.flatMap((e) => Object.keys(e.metrics)))];
  const head = [
    "t",
    "vs prev",
    "vs initial",
    "vs teacher",
    ...metricNames,
    "length",
    "pairs T>S S>T S>S",
    "seconds",
  ];
  const rows = result.evals.map((e) => {
    const c = result.pairs.find((p) => p.t === e.t)?.composition;
    const own = (name: string) =>
      e.t === 0 ? ["init", "sft", "eval/0"].includes(name) : name.startsWith(`${e.t}/`);
    const seconds = Object.entries(result.stageSeconds)
      .filter(([name]) => own(name))
      .reduce((sum, [, v]) => sum + v, 0);
    const tripped = result.warnings.filter((w) => w.t === e.t).map((w) => w.guard);
    const mark = e.t + 1 === result.best ? " *" : tripped.length > 0 ? " !" : "";
    return [
      `${e.t}${mark}`,
      f(e.winrate_vs_prev),
      f(e.winrate_vs_initial),
      f(e.winrate_vs_teacher),
      ...metricNames.map((m) => f(e.metrics[m])),
      e.avg_length.toFixed(1),
      c ? `${c.teacher_over_student} ${c.student_over_teacher} ${c.student_over_student}` : "–",
      seconds.toFixed(1),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ");
  const how =
    result.stoppedAfter !== null
      ? `the last iterate before the collapse at iteration ${result.stoppedAfter}`
      : result.chosenBy === "validation"
        ? "chosen on the validation prompts"
        : "the last iterate (no validation prompts to choose on)";
  return [
    line(head),
    ...rows.map(line),
    `* the result: pi_${result.best}, ${how}` +
      (result.warnings.length > 0 ? "; ! a collapse guard tripped (see the warnings above)" : ""),
  ].join("\n");
}
