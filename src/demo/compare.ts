/**
 * `dno compare`: the demo task under the paper's Table 1 variants, from one shared SFT policy, into a
 * markdown table and JSON. Each variant is an ordinary (resumable) run in OUT/<variant>.
 */
import { join, resolve } from "node:path";
import { canonicalJson } from "../oracle/cache.js";
import type { RunConfigInput } from "../pipeline/config.js";
import { type ProgressFn, policyPath, type RunResult } from "../pipeline/run.js";
import type { StageEvents } from "../pipeline/stages.js";
import { writeFileAtomic } from "../util/atomic.js";
import {
  DEMO_SFT,
  DEMO_TRAIN,
  type DemoSummary,
  type DemoTask,
  demoConfig,
  demoModule,
  NEGATIVES_SFT,
  runDemo,
  SELF_JUDGE_SFT,
} from "./demo.js";
import { DEMO_NEGATIVE_PREFIXES, DEMO_SELF_SCORES } from "./self-data.js";

export interface Variant {
  name: string;
  description: string;
  overrides: Partial<RunConfigInput>;
}

/** LoRA's learning rate on the demo: 10x the full fine-tune's, a common rule for LoRA (checked on seed 7). */
const LORA_LR = 1.5e-3;

type PairsInput = NonNullable<RunConfigInput["pairs"]>;
const base = { rule: "win-rate", pairs_per_prompt: 2, replay: [0.3, 0.15] } satisfies PairsInput;

export const VARIANTS: Variant[] = [
  { name: "dno", description: "DNO-Prct: large-margin pairs, reference pi_t", overrides: {} },
  {
    name: "dno-lora",
    description: `DNO-Prct training a LoRA adapter (r 16, alpha 32, all seven projections, lr ${LORA_LR}) each iteration`,
    overrides: { train: { ...DEMO_TRAIN, lr: LORA_LR, lora: { r: 16, alpha: 32 } } },
  },
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
    name: "dpo-offline",
    description: "offline DPO: the first iteration's pairs, every iteration",
    overrides: { pairs: { ...base, offline: true }, objective: { name: "dpo", beta: 0.1 } },
  },
  {
    name: "reward-augmented",
    description:
      "reward-augmented DPO: goal-conditioned pairs (the goal a system message), SFT also on the gold answers under goal 1.0, generation asks for goal 1.0",
    // The demo's own pair settings, so that the row differs from dpo-iterative by the goals alone. The
    // from-scratch model has never seen a goal: SFT teaches it what the top one asks for.
    overrides: {
      sft: { ...DEMO_SFT, goal_conditioned: true },
      pairs: {
        ...base,
        pairs_per_prompt: 3,
        reward_augmented: { conditioning: "system", template: "goal {goal}" },
      },
      objective: { name: "dpo", beta: 0.1 },
    },
  },
  {
    name: "spo",
    description: "iterative DPO + SPO's preference-degree loss (weight 0.1, letters removed)",
    overrides: { objective: { name: "dpo", beta: 0.1, spo: { unit: "letters" } } },
  },
  {
    name: "nash-md",
    description: "Nash-MD: reference the geometric mixture of pi_t and pi_1, tau = beta/3",
    overrides: { objective: { name: "nash-md", beta: 0.3, tau: 0.1 } },
  },
  {
    name: "selm",
    description: "SELM: DPO loss + optimism alpha beta lr(y_e), y_e ~ pi_t, the paper's alpha = 0.001",
    overrides: { objective: { name: "selm", beta: 0.3, alpha: 0.001 } },
  },
  {
    name: "ensemble",
    description: "labels from an ensemble (worst case) of the demo's oracle and a length-biased judge",
    overrides: {
      train_oracle: {
        kind: "ensemble",
        aggregate: "min",
        members: [
          { kind: "programmatic", module: demoModule("oracle.js") },
          { kind: "programmatic", module: demoModule("length-biased-oracle.js") },
        ],
      },
    },
  },
  {
    name: "self-rewarding",
    description: "Self-Rewarding: pi_t scores its own samples (0-2 rubric it learnt in SFT), no judge",
    overrides: {
      sft: { ...DEMO_SFT, data: SELF_JUDGE_SFT },
      train_oracle: {
        kind: "self",
        template: "inputs/judge.jinja",
        readout: "expected",
        ...DEMO_SELF_SCORES,
      },
    },
  },
  {
    name: "only-prompting",
    description: "only-prompting: y_l = pi_t's answer under a worse-answer prefix, gap 3, 2, 1; no judge",
    overrides: {
      sft: { ...DEMO_SFT, data: NEGATIVES_SFT },
      pairs: { ...base, rule: "prompted", pairs_per_prompt: 3, negative_prefixes: DEMO_NEGATIVE_PREFIXES },
    },
  },
  {
    name: "dice",
    description: "DICE: round 1 DPO on offline preferences, then the implicit reward, 50% offline replay",
    overrides: {
      sampling: { samples_per_prompt: 5, temperature: 1, top_p: 1, max_new_tokens: 16, include_gold: false },
      train_oracle: { kind: "implicit-reward", beta: 0.3, length_penalty: 0.05 },
      pairs: {
        rule: "win-rate",
        pairs_per_prompt: 1,
        replay: [],
        offline_data: { file: "inputs/preferences.jsonl", fraction: 0.5 },
      },
    },
  },
];

/** The variant whose run also reports Algorithm 1's output, the mixture of its iterates, as a row. */
const MIXTURE_OF = "dno";

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

export interface VariantRun {
  variant: Variant;
  summary: DemoSummary;
  result: RunResult;
}

/** Runs each variant of a task as a demo run in OUT/<variant>. */
export async function runVariants(
  out: string,
  variants: readonly Variant[],
  task: DemoTask,
  ui: CompareUi,
  common: Partial<RunConfigInput>,
): Promise<VariantRun[]> {
  const runs: VariantRun[] = [];
  // The first variant with an SFT setting trains pi_1; the others with the same setting start from
  // its checkpoint, so they all share pi_1 (the self-rewarding rows' seed models learn more).
  const starts = new Map<string, string>();
  for (const v of variants) {
    ui.announce?.(v);
    const dir = join(out, v.name);
    const sft = canonicalJson(demoConfig({ ...common, ...v.overrides }, task).sft);
    const start = starts.get(sft);
    const overrides: Partial<RunConfigInput> = start
      ? { ...common, ...v.overrides, model: { path: start }, sft: undefined }
      : { ...common, ...v.overrides };
    const { summary, result } = await runDemo({ out: dir, overrides, task, ...ui });
    if (!start) starts.set(sft, resolve(dir, policyPath(1)));
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
  const rows: CompareRow[] = [];
  for (const { variant: v, summary } of await runVariants(out, chosen, "reverse", ui, common)) {
    rows.push(row(v, summary));
    if (v.name === MIXTURE_OF && summary.mixture)
      rows.push(mixtureRow(v, summary.mixture, summary.total_seconds));
  }
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

function mixtureRow(v: Variant, m: NonNullable<DemoSummary["mixture"]>, seconds: number): CompareRow {
  return {
    variant: `${v.name}-mixture`,
    description: `Algorithm 1's output: the uniform mixture of the ${v.name} run's iterates pi_1..pi_${m.iterates}`,
    winrate_vs_teacher: m.winrate_vs_teacher,
    winrate_vs_sft: m.winrate_vs_sft,
    accuracy: m.accuracy,
    exploitability: m.exploitability,
    seconds,
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
