/** Text table and plot spec of a game run (pure; the CLI does the I/O). */
import type { TopLevelSpec } from "vega-lite";
import type { GameRun, IterationRecord } from "./dynamics.js";

/** Fixed 4 decimals, scientific below 1e-3; float round-off (|v| < 1e-12) prints as 0. */
function num(v: number): string {
  if (Math.abs(v) < 1e-12) return "0";
  return Math.abs(v) >= 1e-3 ? v.toFixed(4) : v.toExponential(2);
}

/** Iterations shown in the table: 1..5, then 10, 20, 50, 100, 200, 500, ... (or every `every`th), and the last. */
export function tableIterations(total: number, every?: number): number[] {
  const shown = new Set<number>();
  if (every !== undefined) {
    shown.add(1);
    for (let t = every; t <= total; t += every) shown.add(t);
  } else {
    for (let t = 1; t <= Math.min(5, total); t++) shown.add(t);
    for (let scale = 10; scale <= total; scale *= 10) {
      for (const m of [1, 2, 5]) if (m * scale <= total) shown.add(m * scale);
    }
  }
  shown.add(total);
  return [...shown].sort((a, b) => a - b);
}

export function formatGameRun(run: GameRun, every?: number): string {
  const o = run.options;
  const lines: string[] = [];
  const settings =
    run.mode === "exact"
      ? `beta ${o.beta}${o.tau > 0 ? `, tau ${o.tau}` : ""}`
      : `beta ${o.beta}, K=${o.samples} samples, ${o.steps} Adam steps at lr ${o.lr}, seed ${o.seed}` +
        (run.mode === "prct" ? `, margin ${o.margin}` : "");
  lines.push(`dno game: ${run.game} (${run.description})`);
  lines.push(`mode ${run.mode}, ${settings}, ${o.iterations} iterations`);
  lines.push(`Nash equilibrium by LP (exploitability ${num(run.nash_exploitability)}, certified <= 1e-9):`);
  for (const p of run.final.policies) lines.push(`  ${p.prompt}: ${policyText(p.responses, p.nash)}`);
  lines.push(
    `pi_1: exploitability ${num(run.initial.exploitability)}, distance to Nash ${num(run.initial.nash_distance)}`,
  );
  lines.push("");
  const header = [
    "t",
    "P(pi_t+1 > pi_t)",
    "exploit last",
    "exploit mixture",
    "TV last-Nash",
    "TV mixture-Nash",
  ];
  if (run.mode !== "exact") header.push("loss");
  const rows = tableIterations(o.iterations, every).map((t) =>
    rowOf(run.iterations[t - 1]!, run.mode !== "exact"),
  );
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const fmt = (cells: string[]) => cells.map((cell, c) => cell.padStart(widths[c]!)).join("  ");
  lines.push(fmt(header));
  for (const r of rows) lines.push(fmt(r));
  lines.push("");
  lines.push("final policies (last iterate | uniform mixture of pi_1..pi_T+1):");
  for (const p of run.final.policies) {
    lines.push(`  ${p.prompt}: ${policyText(p.responses, p.last)} | ${policyText(p.responses, p.mixture)}`);
  }
  lines.push(
    "exploitability = max_y P(y > pi) - 1/2 averaged over prompts; TV = total-variation distance to the LP's Nash.",
  );
  return `${lines.join("\n")}\n`;
}

function rowOf(r: IterationRecord, withLoss: boolean): string[] {
  const cells = [
    String(r.t),
    num(r.p_improve),
    num(r.exploitability_last),
    num(r.exploitability_mixture),
    num(r.nash_distance_last),
    num(r.nash_distance_mixture),
  ];
  if (withLoss) cells.push(r.loss === null ? "-" : num(r.loss));
  return cells;
}

function policyText(responses: string[], pi: number[]): string {
  return responses.map((y, i) => `${y} ${pi[i]!.toFixed(3)}`).join(", ");
}

/** Float round-off in an exploitability (|v| < 1e-12) is 0, as the table prints it. */
const ROUND_OFF = 1e-12;

/**
 * Exploitability of the last iterate and of the mixture per iteration: a log scale when every value is
 * positive, else a linear one from 0 (round-off counted as 0, so an equilibrium draws a flat line at 0
 * instead of 1e-15 noise).
 */
export function gamePlotSpec(run: GameRun): TopLevelSpec {
  const clean = (v: number) => (Math.abs(v) < ROUND_OFF ? 0 : v);
  const values = run.iterations.flatMap((r) => [
    { t: r.t, policy: "last iterate", exploitability: clean(r.exploitability_last) },
    { t: r.t, policy: "uniform mixture", exploitability: clean(r.exploitability_mixture) },
  ]);
  const logScale = values.every((v) => v.exploitability > 0);
  const top = Math.max(...values.map((v) => v.exploitability));
  return {
    title: `dno game ${run.game}: ${run.mode}, beta ${run.options.beta}`,
    width: 480,
    height: 280,
    data: { values },
    mark: "line",
    encoding: {
      x: { field: "t", type: "quantitative", title: "iteration t", axis: { format: "d", labelAngle: 0 } },
      y: {
        field: "exploitability",
        type: "quantitative",
        title: "exploitability max_y P(y > pi) - 1/2",
        // Exploitability is at most 1/2; an all-zero run gets that whole range rather than an empty one.
        scale: logScale ? { type: "log" } : { type: "linear", domain: [0, top > 0 ? top : 0.5], nice: true },
      },
      color: { field: "policy", type: "nominal" },
    },
    config: { legend: { orient: "bottom", labelLimit: 0 } },
  };
}
