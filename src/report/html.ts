/**
 * The run report: one self-contained HTML file (inline SVG plots, no scripts, no network) showing why
 * a run improved or did not: collapse warnings, win rates per iteration, example answers with their
 * judgments, the paper's Table 2 pair composition, response lengths, training loss and reward margins
 * (SFT apart from DNO), and the task's own metrics. Colour always means the iteration, the same in
 * every plot and table; other distinctions are drawn in grey (dashes, shades).
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

/** Held-out prompts answered by the policy after iteration t, each answer with its judgments. */
export interface ReportSamples {
  t: number;
  prompts: {
    prompt: string;
    gold: string | null | undefined;
    /** text null: a sample the sampler failed to produce. */
    answers: {
      text: string | null;
      vsPrev: number | null;
      vsInitial: number | null;
      vsTeacher: number | null;
    }[];
  }[];
}

export interface ReportWarning {
  t: number;
  guard: string;
  message: string;
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
  /** The resulting iterate, 1-based (pi_best). */
  best: number;
  /** How `best` was chosen: on validation prompts, or simply the last (good) iterate. */
  chosenBy: "validation" | "last";
  /** The iteration after which a collapse guard stopped the run; null when it was not stopped. */
  stoppedAfter: number | null;
  /** Whether the run has chosen its result (false while it is still running). */
  finished: boolean;
  warnings: ReportWarning[];
  samples: ReportSamples[];
  finalWeightsSha256: string;
  oracleJudgments: number;
}

const WIDTH = 520;
const HEIGHT = 240;
/** Category10, then grey for the initial policy / SFT: the colour of each iteration, everywhere. */
const ITERATION_COLOURS = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#bcbd22",
  "#17becf",
];
const INITIAL_COLOUR = "#7f7f7f";
const GREYS = ["#222222", "#777777", "#bbbbbb"];

export function iterationColour(t: number): string {
  return t === 0 ? INITIAL_COLOUR : ITERATION_COLOURS[(t - 1) % ITERATION_COLOURS.length]!;
}

function iterationName(t: number): string {
  return t === 0 ? "initial (SFT)" : `iteration ${t}`;
}

/** Bigger type, unrotated labels, legends below the plot (never cut at the right edge). */
const CONFIG = {
  font: "system-ui, sans-serif",
  axis: { labelFontSize: 12, titleFontSize: 13, labelAngle: 0, labelOverlap: true, grid: true },
  legend: {
    labelFontSize: 12,
    titleFontSize: 12,
    orient: "bottom",
    labelLimit: 0,
    columns: 3,
    symbolSize: 80,
  },
  view: { stroke: "#ddd" },
} as const;

export async function renderReport(data: ReportData): Promise<string> {
  const its = data.iterations;
  const ts = its.map((it) => it.t);
  // One legend for the iteration colours, above the plots (legend: null in each plot).
  const colour = {
    field: "iteration",
    type: "nominal",
    scale: { domain: ts.map(iterationName), range: ts.map(iterationColour) },
    legend: null,
  } as const;
  const tAxis = {
    field: "t",
    type: "ordinal",
    title: "policy after iteration t (0 = initial)",
    axis: { labelAngle: 0 },
  } as const;

  const winRows = its.flatMap((it) =>
    (
      [
        ["vs previous policy", it.winrate_vs_prev],
        ["vs initial policy", it.winrate_vs_initial],
        ["vs teacher", it.winrate_vs_teacher],
      ] as const
    ).flatMap(([against, v]) =>
      v === null ? [] : [{ t: it.t, iteration: iterationName(it.t), against, winrate: v }],
    ),
  );
  const pairKinds = ["teacher over student", "student over teacher", "student over student"];
  const pairRows = its.flatMap((it) =>
    it.pairs
      ? (
          [
            [pairKinds[0], it.pairs.teacher_over_student],
            [pairKinds[1], it.pairs.student_over_teacher],
            [pairKinds[2], it.pairs.student_over_student],
          ] as const
        ).map(([kind, n]) => ({ t: it.t, kind, share: it.pairs!.total > 0 ? n / it.pairs!.total : 0 }))
      : [],
  );
  const metricNames = [...new Set(its.flatMap((it) => Object.keys(it.metrics)))];
  const metricRows = its.flatMap((it) =>
    Object.entries(it.metrics)
      .filter(([, v]) => Number.isFinite(v))
      .map(([metric, value]) => ({ t: it.t, iteration: iterationName(it.t), metric, value })),
  );
  const sftRows = data.training.filter((r) => r.t === 0);
  let dnoStep = 0;
  const dnoRows = data.training
    .filter((r) => r.t > 0)
    .map((r) => ({ ...r, x: ++dnoStep, iteration: iterationName(r.t) }));
  const dnoColour = {
    ...colour,
    scale: {
      domain: ts.filter((t) => t > 0).map(iterationName),
      range: ts.filter((t) => t > 0).map(iterationColour),
    },
  };

  const plots: [string, TopLevelSpec][] = [];
  if (winRows.length > 0) {
    plots.push([
      "Win rates on held-out prompts (0.5 = a tie)",
      {
        data: { values: winRows },
        layer: [
          {
            mark: { type: "rule", color: "#999", strokeDash: [2, 2] },
            encoding: { y: { datum: 0.5, type: "quantitative" } },
          },
          {
            mark: { type: "line", color: GREYS[0] },
            encoding: {
              x: tAxis,
              y: { field: "winrate", type: "quantitative", scale: { domain: [0, 1] }, title: "win rate" },
              strokeDash: { field: "against", type: "nominal", title: "against", sort: null },
              detail: { field: "against", type: "nominal" },
            },
          },
          {
            mark: { type: "point", filled: true, size: 90 },
            encoding: {
              x: tAxis,
              y: { field: "winrate", type: "quantitative" },
              color: colour,
            },
          },
        ],
      },
    ]);
  }
  if (pairRows.length > 0) {
    plots.push([
      "Pair composition (the paper's Table 2)",
      {
        data: { values: pairRows },
        mark: { type: "bar", stroke: "#fff" },
        encoding: {
          x: { ...tAxis, title: "iteration t" },
          y: {
            field: "share",
            type: "quantitative",
            stack: "zero",
            title: "share of fresh pairs",
            scale: { domain: [0, 1] },
          },
          color: {
            field: "kind",
            type: "nominal",
            title: "pair",
            scale: { domain: pairKinds, range: GREYS },
            sort: null,
          },
          order: { field: "kind", sort: "ascending" },
        },
      },
    ]);
  }
  plots.push([
    "Mean response length (characters)",
    {
      data: { values: its.map((it) => ({ t: it.t, iteration: iterationName(it.t), length: it.avg_length })) },
      mark: { type: "bar" },
      encoding: {
        x: tAxis,
        y: { field: "length", type: "quantitative", title: "characters" },
        color: colour,
      },
    },
  ]);
  if (sftRows.length > 0) {
    plots.push([
      `SFT loss (${sftRows.length} steps, before iteration 1)`,
      {
        data: { values: sftRows },
        mark: { type: "line", color: INITIAL_COLOUR },
        encoding: {
          x: { field: "step", type: "quantitative", title: "SFT step", axis: { format: "~s" } },
          y: { field: "loss", type: "quantitative", title: "loss (token-mean NLL)", scale: { zero: false } },
        },
      },
    ]);
  }
  // One line per iteration over the DNO training steps of all iterations.
  const dnoStepPlot = (
    rows: typeof dnoRows,
    y: { field: "loss" | "margin"; title: string; scale?: { zero: boolean } },
  ): TopLevelSpec => ({
    data: { values: rows },
    mark: { type: "line" },
    encoding: {
      x: {
        field: "x",
        type: "quantitative",
        title: "DNO training step (all iterations)",
        axis: { format: "~s" },
      },
      y: { ...y, type: "quantitative" },
      color: dnoColour,
    },
  });
  if (dnoRows.length > 0) {
    plots.push([
      "DNO training loss, by iteration",
      dnoStepPlot(dnoRows, { field: "loss", title: "loss", scale: { zero: false } }),
    ]);
    const margins = dnoRows.filter((r) => r.margin !== null);
    if (margins.length > 0) {
      plots.push([
        "Reward margin beta * (log-ratio(y_w) - log-ratio(y_l))",
        dnoStepPlot(margins, { field: "margin", title: "margin" }),
      ]);
    }
  }
  const benchRows = its.flatMap((it) =>
    it.benchmark ? [{ t: it.t, iteration: iterationName(it.t), ...it.benchmark }] : [],
  );
  if (benchRows.length > 0) {
    const kind = benchRows[0]!.kind;
    const title = kind === "mt-bench" ? "MT-Bench score (1-10)" : "Arena-Hard win rate vs baseline (%)";
    plots.push([
      `${kind === "mt-bench" ? "MT-Bench" : "Arena-Hard"} with its 95% interval`,
      {
        data: { values: benchRows },
        layer: [
          {
            mark: { type: "rule", color: GREYS[1] },
            encoding: { x: tAxis, y: { field: "low", type: "quantitative", title }, y2: { field: "high" } },
          },
          {
            mark: { type: "line", color: GREYS[1] },
            encoding: { x: tAxis, y: { field: "score", type: "quantitative" } },
          },
          {
            mark: { type: "point", filled: true, size: 90 },
            encoding: { x: tAxis, y: { field: "score", type: "quantitative" }, color: colour },
          },
        ],
      },
    ]);
  }
  const svgs = await Promise.all(
    plots.map(async ([title, spec]) => {
      const svg = await vegaLiteToSvg({
        ...spec,
        width: WIDTH,
        height: HEIGHT,
        config: CONFIG,
      } as TopLevelSpec);
      return `<figure><figcaption>${escapeHtml(title)}</figcaption>${svg}</figure>`;
    }),
  );
  let metricFigure = "";
  if (metricRows.length > 0) {
    // Small multiples: metrics have their own scales, and colour stays the iteration's.
    const spec = {
      data: { values: metricRows },
      facet: {
        field: "metric",
        type: "nominal",
        title: null,
        sort: metricNames,
        header: { labelFontSize: 13 },
      },
      columns: 3,
      spec: {
        width: 170,
        height: 120,
        layer: [
          {
            mark: { type: "line", color: "#999" },
            encoding: {
              x: { ...tAxis, title: "t" },
              y: {
                field: "value",
                type: "quantitative",
                title: null,
                scale: { zero: false },
                axis: { format: "~g" },
              },
            },
          },
          {
            mark: { type: "point", filled: true, size: 70 },
            encoding: {
              x: { ...tAxis, title: "t" },
              y: { field: "value", type: "quantitative" },
              color: colour,
            },
          },
        ],
      },
      resolve: { scale: { y: "independent" } },
      config: CONFIG,
    };
    const svg = await vegaLiteToSvg(spec as unknown as TopLevelSpec);
    metricFigure = `<figure class="wide"><figcaption>Task metrics (task_metrics), each on its own scale</figcaption>${svg}</figure>`;
  }

  const fmt = (x: number | null | undefined) =>
    x === null || x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(3);
  const resultLabel =
    data.stoppedAfter !== null ? "last good" : data.chosenBy === "validation" ? "best" : "last";
  const tripped = (t: number) => data.warnings.filter((w) => w.t === t);
  // Each column is its heading beside its cell, so the two cannot drift apart.
  type Iteration = (typeof its)[number];
  const columns: [string, (it: Iteration) => string][] = [
    [
      "t",
      (it) =>
        `${swatch(it.t)}${it.t}${data.finished && it.t === data.best - 1 ? ` (${resultLabel})` : ""}${tripped(it.t).length > 0 ? " ⚠" : ""}`,
    ],
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
  const header = columns.map(([name]) => escapeHtml(name));
  const rows = its.map((it) =>
    columns.map(([name, cell]) => (name === "t" ? cell(it) : escapeHtml(cell(it)))),
  );
  if (data.mixture) {
    const m = data.mixture;
    const label = `mixture of pi_1..pi_${m.iterates} (vs prev: vs the last iterate)`;
    rows.push(columns.map(([, cell], i) => escapeHtml(i === 0 ? label : cell({ ...m, t: -1 }))));
  }
  const settings = Object.entries(data.settings).map(([k, v]) => [k, String(v)]);
  settings.push(
    ["oracle judgments paid", String(data.oracleJudgments)],
    ["final weights SHA-256", data.finalWeightsSha256],
  );

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(data.title)}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;margin:1.5em auto;max-width:1240px;padding:0 1em;color:#222}
h1{font-size:1.6em;margin:.2em 0}h2{margin-top:1.6em;font-size:1.25em}
table{border-collapse:collapse;margin:.6em 0;font-size:13.5px}td,th{border:1px solid #ccc;padding:4px 7px;text-align:right;vertical-align:top}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}td{white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,520px),1fr));gap:1.2em 2em}
figure{margin:0;min-width:0}figure.wide{grid-column:1/-1}figcaption{font-weight:600;margin-bottom:.3em}
figure svg{max-width:100%;height:auto}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;vertical-align:-.05em}
.banner{border:2px solid #c62828;background:#fdecea;color:#7f1d1d;padding:.7em 1em;border-radius:6px;margin:1em 0}
.banner ul{margin:.3em 0 0 1.2em;padding:0}
.result{background:#f1f7ff;border:1px solid #bcd;padding:.5em 1em;border-radius:6px}
table.samples td.text{white-space:pre-wrap;word-break:break-word;text-align:left;min-width:10ch;max-width:48ch;font-family:ui-monospace,monospace}
table.samples td.prompt{white-space:pre-wrap;word-break:break-word;max-width:36ch;font-family:ui-monospace,monospace}
details{margin:.4em 0}summary{cursor:pointer;font-weight:600}.legend{font-weight:600}
</style></head><body>
<h1>${escapeHtml(data.title)}</h1>
${banner(data)}
<p class="result">${resultText(data)}</p>
<p>Win rates are P(policy beats opponent) on held-out prompts, ties counted as half, judged by the run's oracle.
Row t is the policy after iteration t (t = 0: the initial policy). Pairs: teacher-over-student (T&gt;S),
student-over-teacher (S&gt;T), student-over-student (S&gt;S), fresh pairs of the iteration.
Colour is the iteration, the same in every plot and table.</p>
<div class="scroll">${table(header, rows)}</div>
<p class="legend">${ts.map((t) => `${swatch(t)}${escapeHtml(iterationName(t))}`).join(" &nbsp; ")}</p>
<div class="plots">${svgs.join("\n")}${metricFigure}</div>
<h2>Example answers</h2>
<p>The first held-out prompts, each answered by the policy after iteration t (the samples the win rates were
judged on), with each answer's judgment against the previous policy's, the initial policy's and the teacher's
answer of the same index (1 = win, 0.5 = tie, 0 = loss).</p>
${data.samples.map((s, i) => sampleSection(s, i === data.samples.length - 1 || i === 0)).join("\n")}
<h2>Settings</h2>
<div class="scroll">${table(
    ["setting", "value"],
    settings.map((r) => r.map(escapeHtml)),
  )}</div>
</body></html>
`;
}

function table(head: string[], body: string[][], className = ""): string {
  return `<table${className ? ` class="${className}"` : ""}><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${body
    .map((r) => `<tr>${r.map((c) => (c.startsWith("<td") ? c : `<td>${c}</td>`)).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

function swatch(t: number): string {
  return `<span class="sw" style="background:${iterationColour(t)}"></span>`;
}

function banner(data: ReportData): string {
  if (data.warnings.length === 0) return "";
  const stopped =
    data.stoppedAfter !== null
      ? ` The run stopped after iteration ${data.stoppedAfter} (guards.stop_on_collapse) and kept pi_${data.best}.`
      : " Set <code>guards: { stop_on_collapse: true }</code> to stop at the first collapse and keep the last good iterate; a lower learning rate or a higher beta usually avoids it (README: tuning).";
  return `<div class="banner"><strong>Collapse warning.</strong> After ${data.warnings.length === 1 ? "one iteration" : "some iterations"} the policy looks broken rather than improved:${stopped}<ul>${data.warnings
    .map((w) => `<li>iteration ${w.t} (${escapeHtml(w.guard)}): ${escapeHtml(w.message)}</li>`)
    .join("")}</ul></div>`;
}

function resultText(data: ReportData): string {
  if (!data.finished) return "The run has not finished: the table shows the iterations evaluated so far.";
  const why =
    data.stoppedAfter !== null
      ? `the last iterate before the collapse at iteration ${data.stoppedAfter}`
      : data.chosenBy === "validation"
        ? "the best iterate, chosen by its win rate against the initial policy on the validation prompts"
        : "the last iterate (the run has no validation prompts, so no iterate was chosen as best)";
  return `Result: <strong>pi_${data.best}</strong> (row t = ${data.best - 1}), ${why}.`;
}

function sampleSection(s: ReportSamples, open: boolean): string {
  const j = (x: number | null) => (x === null ? "–" : String(Math.round(x * 100) / 100));
  const text = (x: string | null) =>
    `<td class="text">${x === null ? "<em>(not sampled)</em>" : x === "" ? "<em>(empty)</em>" : escapeHtml(x)}</td>`;
  const rows = s.prompts.flatMap((p) =>
    p.answers.map((a, k) => [
      ...(k === 0
        ? [
            `<td class="prompt" rowspan="${p.answers.length}">${escapeHtml(p.prompt)}</td>`,
            p.gold === null || p.gold === undefined
              ? `<td rowspan="${p.answers.length}">–</td>`
              : `<td class="text" rowspan="${p.answers.length}">${escapeHtml(p.gold)}</td>`,
          ]
        : []),
      text(a.text),
      j(a.vsPrev),
      j(a.vsInitial),
      j(a.vsTeacher),
    ]),
  );
  const head = ["prompt", "teacher", "answer", "vs prev", "vs initial", "vs teacher"];
  return `<details${open ? " open" : ""}><summary>${swatch(s.t)}${escapeHtml(iterationName(s.t))}: answers of the policy after iteration ${s.t}</summary>
<div class="scroll">${table(head, rows, "samples")}</div></details>`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
