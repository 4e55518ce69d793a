/**
 * The run report: one self-contained HTML file (inline SVG plots, no scripts, no network) showing why
 * a run improved or did not: win rates per iteration, the paper's Table 2 pair composition, response
 * lengths, training loss and reward margins, and the task's own metrics.
 */
import type { TopLevelSpec } from "vega-lite";
import { vegaLiteToSvg } from "./svg.js";

export interface ReportIteration {
  /** 0 = the initial policy pi_1; t = pi_{t+1}, the policy after iteration t. */
  t: number;
  winrate_vs_prev: number | null;
  winrate_vs_initial: number | null;
  winrate_vs_teacher: number | null;
  lc_winrate_vs_teacher?: number | null;
  avg_length: number;
  metrics: Record<string, number>;
  /** `eval.benchmark`: MT-Bench (1-10 mean, interval mean ± 1.96 SE) or Arena-Hard (win rate %, bootstrap CI). */
  benchmark?: { kind: "mt-bench" | "arena-hard"; score: number; low: number | null; high: number | null };
  pairs?: {
    teacher_over_student: number;
    student_over_teacher: number;
    student_over_student: number;
    total: number;
  };
  seconds?: number;
}

export interface ReportData {
  title: string;
  /** Key facts of the config, shown as a table (objective, beta, iterations, ...). */
  settings: Record<string, string | number>;
  iterations: ReportIteration[];
  /** Algorithm 1's output, the uniform mixture of pi_1..pi_T; winrate_vs_prev is against the last iterate. */
  mixture: (Omit<ReportIteration, "t"> & { iterates: number }) | null;
  /** Training steps of every iteration (t = 0 is SFT). */
  training: { t: number; step: number; loss: number; margin: number | null }[];
  best: number;
  finalWeightsSha256: string;
  oracleJudgments: number;
}

const WIDTH = 420;
const HEIGHT = 220;

export async function renderReport(data: ReportData): Promise<string> {
  const its = data.iterations;
  const winRows = its.flatMap((it) =>
    (
      [
        ["vs previous policy", it.winrate_vs_prev],
        ["vs initial policy", it.winrate_vs_initial],
        ["vs teacher", it.winrate_vs_teacher],
      ] as const
    ).flatMap(([against, v]) => (v === null ? [] : [{ t: it.t, against, winrate: v }])),
  );
  const pairRows = its.flatMap((it) =>
    it.pairs
      ? (
          [
            ["teacher over student", it.pairs.teacher_over_student],
            ["student over teacher", it.pairs.student_over_teacher],
            ["student over student", it.pairs.student_over_student],
          ] as const
        ).map(([kind, n]) => ({ t: it.t, kind, share: it.pairs!.total > 0 ? n / it.pairs!.total : 0 }))
      : [],
  );
  const metricNames = [...new Set(its.flatMap((it) => Object.keys(it.metrics)))];
  const metricRows = its.flatMap((it) =>
    Object.entries(it.metrics).map(([metric, value]) => ({ t: it.t, metric, value })),
  );
  let globalStep = 0;
  const trainRows = data.training.map((r) => ({
    ...r,
    x: ++globalStep,
    phase: r.t === 0 ? "SFT" : `iteration ${r.t}`,
  }));
  const t = { field: "t", type: "ordinal", title: "policy after iteration t (0 = initial)" } as const;

  const plots: [string, TopLevelSpec][] = [
    [
      "Win rates on held-out prompts",
      {
        data: { values: winRows },
        mark: { type: "line", point: true },
        encoding: {
          x: t,
          y: { field: "winrate", type: "quantitative", scale: { domain: [0, 1] }, title: "win rate" },
          color: { field: "against", type: "nominal" },
        },
      },
    ],
    [
      "Pair composition (the paper's Table 2)",
      {
        data: { values: pairRows },
        mark: "bar",
        encoding: {
          x: t,
          y: { field: "share", type: "quantitative", stack: "zero", title: "share of pairs" },
          color: { field: "kind", type: "nominal" },
        },
      },
    ],
    [
      "Mean response length (characters)",
      {
        data: { values: its.map((it) => ({ t: it.t, length: it.avg_length })) },
        mark: { type: "line", point: true },
        encoding: { x: t, y: { field: "length", type: "quantitative", title: "characters" } },
      },
    ],
    [
      "Training loss",
      {
        data: { values: trainRows },
        mark: "line",
        encoding: {
          x: { field: "x", type: "quantitative", title: "step" },
          y: { field: "loss", type: "quantitative" },
          color: { field: "phase", type: "nominal" },
        },
      },
    ],
    [
      "Reward margin beta * (lr(y_w) - lr(y_l))",
      {
        data: { values: trainRows.filter((r) => r.margin !== null) },
        mark: "line",
        encoding: {
          x: { field: "x", type: "quantitative", title: "step" },
          y: { field: "margin", type: "quantitative", title: "margin" },
          color: { field: "phase", type: "nominal" },
        },
      },
    ],
  ];
  const benchRows = its.flatMap((it) => (it.benchmark ? [{ t: it.t, ...it.benchmark }] : []));
  if (benchRows.length > 0) {
    const kind = benchRows[0]!.kind;
    const title = kind === "mt-bench" ? "MT-Bench score (1-10)" : "Arena-Hard win rate vs baseline (%)";
    plots.push([
      `${kind === "mt-bench" ? "MT-Bench" : "Arena-Hard"} with its 95% interval`,
      {
        data: { values: benchRows },
        layer: [
          {
            mark: { type: "rule" },
            encoding: {
              x: t,
              y: { field: "low", type: "quantitative", title },
              y2: { field: "high" },
            },
          },
          {
            mark: { type: "line", point: true },
            encoding: { x: t, y: { field: "score", type: "quantitative", title } },
          },
        ],
      },
    ]);
  }
  if (metricNames.length > 0) {
    plots.push([
      "Task metrics",
      {
        data: { values: metricRows },
        mark: { type: "line", point: true },
        encoding: {
          x: t,
          y: { field: "value", type: "quantitative" },
          color: { field: "metric", type: "nominal" },
        },
      },
    ]);
  }
  const svgs = await Promise.all(
    plots.map(async ([title, spec]) => {
      const svg = await vegaLiteToSvg({ ...spec, width: WIDTH, height: HEIGHT } as TopLevelSpec);
      return `<figure><figcaption>${escapeHtml(title)}</figcaption>${svg}</figure>`;
    }),
  );

  const fmt = (x: number | null | undefined) =>
    x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(3);
  // Each column is its heading beside its cell, so the two cannot drift apart.
  type Iteration = (typeof its)[number];
  const columns: [string, (it: Iteration) => string][] = [
    ["t", (it) => (it.t === data.best - 1 ? `${it.t} (best)` : String(it.t))],
    ["vs prev", (it) => fmt(it.winrate_vs_prev)],
    ["vs initial", (it) => fmt(it.winrate_vs_initial)],
    ["vs teacher", (it) => fmt(it.winrate_vs_teacher)],
    ["vs teacher (LC)", (it) => fmt(it.lc_winrate_vs_teacher)],
    ["avg length", (it) => it.avg_length.toFixed(1)],
    ...(benchRows.length > 0
      ? [
          [
            benchRows[0]!.kind === "mt-bench" ? "MT-Bench" : "Arena-Hard %",
            (it: Iteration) =>
              it.benchmark
                ? `${it.benchmark.score.toFixed(2)} [${fmt(it.benchmark.low)}, ${fmt(it.benchmark.high)}]`
                : "–",
          ] as [string, (it: Iteration) => string],
        ]
      : []),
    ...metricNames.map((m): [string, (it: Iteration) => string] => [m, (it) => fmt(it.metrics[m])]),
    [
      "pairs T>S / S>T / S>S",
      (it) =>
        it.pairs
          ? `${it.pairs.teacher_over_student} / ${it.pairs.student_over_teacher} / ${it.pairs.student_over_student}`
          : "–",
    ],
  ];
  const header = columns.map(([name]) => name);
  const rows = its.map((it) => columns.map(([, cell]) => cell(it)));
  if (data.mixture) {
    const m = data.mixture;
    const label = `mixture of pi_1..pi_${m.iterates} (vs prev: vs the last iterate)`;
    rows.push(columns.map(([, cell], i) => (i === 0 ? label : cell({ ...m, t: -1 }))));
  }
  const table = (head: string[], body: string[][]) =>
    `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>${body
      .map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(c)}</td>`).join("")}</tr>`)
      .join("")}</tbody></table>`;
  const settings = Object.entries(data.settings).map(([k, v]) => [k, String(v)]);
  settings.push(
    ["oracle judgments paid", String(data.oracleJudgments)],
    ["final weights SHA-256", data.finalWeightsSha256],
  );

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(data.title)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td{white-space:nowrap}.scroll{overflow-x:auto}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.plots{display:flex;flex-wrap:wrap;gap:1em}figure{margin:0}figcaption{font-weight:600;margin-bottom:.3em}
</style></head><body>
<h1>${escapeHtml(data.title)}</h1>
<p>Win rates are P(policy beats opponent) on held-out prompts, ties counted as half, judged by the run's oracle.
Row t is the policy after iteration t (t = 0: the initial policy). Pairs: teacher-over-student (T&gt;S),
student-over-teacher (S&gt;T), student-over-student (S&gt;S), fresh pairs of the iteration.</p>
<div class="scroll">${table(header, rows)}</div>
<div class="plots">${svgs.join("\n")}</div>
<h2>Settings</h2>
${table(["setting", "value"], settings)}
</body></html>
`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
