/**
 * `dno compare`: the demo task under the paper's Table 1 variants, from one shared SFT policy, into a
 * markdown table and JSON. Each variant is an ordinary (resumable) run in OUT/<variant>.
 */
import { join, resolve } from "node:path";
import type { RunConfigInput } from "../pipeline/config.js";
import { type ProgressFn, policyPath, type RunResult } from "../pipeline/run.js";
import type { StageEvents } from "../pipeline/stages.js";
import { writeFileAtomic } from "../util/atomic.js";
import { type DemoSummary, type DemoTask, runDemo } from "./demo.js";

export interface Variant {
  name: string;
  description: string;
  overrides: Partial<RunConfigInput>;
}

type PairsInput = NonNullable<RunConfigInput["pairs"]>;
const base = { rule: "win-rate", pairs_per_prompt: 2, replay: [0.3, 0.15] } satisfies PairsInput;

export const VARIANTS: Variant[] = [
  { name: "dno", description: "DNO-Prct: large-margin pairs, reference pi_t", overrides: {} },
  {
    name: "dno-restrictive",
    description: "DNO-Restrictive: teacher-only positives",
    overrides: { pairs: { ...base, positive_sources: ["teacher"] } },
  },
  {
    name: "spin",
    description: "SPIN: gold over the policy's own sample, reference pi_t",
    overrides: { pairs: { ...base, rule: "spin" }, objective: { name: "spin", beta: 0.1 } },
  },
  {
    name: "dpo-iterative",
    description: "iterative DPO, fixed reference pi_1",
    overrides: { objective: { name: "dpo", beta: 0.1 } },
  },
  {
    name: "sppo",
    description: "SPPO: squared regression on win rates",
    overrides: { objective: { name: "sppo", beta: 0.1 } },
  },
  {
    name: "reward-augmented",
    description: "reward-augmented DPO: goal-conditioned pairs, generation asks for goal 1.0",
    // The demo's own pair settings, so that the row differs from dpo-iterative only by the relabelling.
    overrides: {
      pairs: { ...base, pairs_per_prompt: 3, reward_augmented: {} },
      objective: { name: "dpo", beta: 0.1 },
    },
  },
  {
    name: "spo",
    description: "iterative DPO + SPO's preference-degree loss (weight 0.1, letters removed)",
    overrides: { objective: { name: "dpo", beta: 0.1, spo: { unit: "letters" } } },
  },
  {
    name: "dpo-offline",
    description: "offline DPO: the first iteration's pairs, every iteration",
    overrides: { pairs: { ...base, offline: true }, objective: { name: "dpo", beta: 0.1 } },
  },
];

export interface CompareRow {
  variant: string;
  description: string;
  winrate_vs_teacher: number | null;
  winrate_vs_sft: number | null;
  accuracy: number | null;
  exploitability: number | null;
  seconds: number;
}

export type CompareUi = { progress?: ProgressFn; events?: StageEvents; announce?: (v: Variant) => void };

/**
 * Runs each variant as a demo run in OUT/<variant>. The first variant trains pi_1 by SFT; the others
 * start from its checkpoint, so all share pi_1.
 */
export async function runVariants(
  out: string,
  variants: readonly Variant[],
  task: DemoTask,
  ui: CompareUi,
  common: Partial<RunConfigInput>,
): Promise<{ variant: Variant; summary: DemoSummary; result: RunResult }[]> {
  const runs: { variant: Variant; summary: DemoSummary; result: RunResult }[] = [];
  let sharedStart: string | undefined;
  for (const v of variants) {
    ui.announce?.(v);
    const dir = join(out, v.name);
    const overrides: Partial<RunConfigInput> = sharedStart
      ? { ...common, ...v.overrides, model: { path: sharedStart }, sft: undefined }
      : { ...common, ...v.overrides };
    const { summary, result } = await runDemo({ out: dir, overrides, task, ...ui });
    sharedStart ??= resolve(dir, policyPath(1));
    runs.push({ variant: v, summary, result });
  }
  return runs;
}

export async function runCompare(
  out: string,
  names: readonly string[],
  ui: CompareUi = {},
  /** Settings laid under every variant's own (a smaller demo, for tests). */
  common: Partial<RunConfigInput> = {},
): Promise<{ rows: CompareRow[]; markdown: string }> {
  const chosen = VARIANTS.filter((v) => names.includes(v.name));
  const runs = await runVariants(out, chosen, "reverse", ui, common);
  const rows = runs.map((r) => row(r.variant, r.summary));
  const markdown = toMarkdown(rows);
  writeFileAtomic(join(out, "compare.md"), markdown);
  writeFileAtomic(join(out, "compare.json"), `${JSON.stringify(rows, null, 2)}\n`);
  return { rows, markdown };
}

function row(v: Variant, s: DemoSummary): CompareRow {
  const last = s.iterations[s.iterations.length - 1]!;
  return {
    variant: v.name,
    description: v.description,
    winrate_vs_teacher: last.winrate_vs_teacher,
    winrate_vs_sft: last.winrate_vs_sft,
    accuracy: last.accuracy,
    exploitability: last.exploitability,
    seconds: s.total_seconds,
  };
}

function toMarkdown(rows: readonly CompareRow[]): string {
  const f = (x: number | null) => (x === null ? "–" : x.toFixed(3));
  const lines = [
    "| variant | WR vs teacher | WR vs SFT | accuracy | exploitability | seconds |",
    "|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.variant} (${r.description}) | ${f(r.winrate_vs_teacher)} | ${f(r.winrate_vs_sft)} | ${f(r.accuracy)} | ${f(r.exploitability)} | ${r.seconds.toFixed(0)} |`,
    ),
  ];
  return `${lines.join("\n")}\n`;
}
