/**
 * `dno compare --task chain`: MCTS-DPO (step-level pairs from tree search) against instance-level
 * DNO-Prct on the reasoning task, from one shared SFT policy: accuracy per iteration, and what each
 * iteration's training data cost (oracle calls, policy tokens sampled).
 */
import { join } from "node:path";
import type { RunConfigInput } from "../pipeline/config.js";
import { writeFileAtomic } from "../util/atomic.js";
import { type CompareUi, runVariants, type Variant } from "./compare.js";

export const CHAIN_VARIANTS: Variant[] = [
  {
    name: "dno",
    description:
      "DNO-Prct: 5 samples + gold per prompt, outcome-checked, large-margin instance pairs, reference pi_t",
    overrides: {},
  },
  {
    name: "mcts-dpo",
    description:
      "MCTS-DPO: tree search over steps, highest- over lowest-Q sibling steps, DPO with reference pi_t",
    overrides: { search: { kind: "mcts" }, objective: { name: "dno-prct", beta: 0.3 } },
  },
];

export interface ChainCompareRow {
  variant: string;
  t: number;
  accuracy: number | null;
  p_correct: number | null;
  pairs: number;
  judgments: number;
  tokens: number;
  seconds: number;
}

export async function runChainCompare(
  out: string,
  names: readonly string[],
  ui: CompareUi = {},
  common: Partial<RunConfigInput> = {},
): Promise<{ rows: ChainCompareRow[]; markdown: string }> {
  const chosen = CHAIN_VARIANTS.filter((v) => names.includes(v.name));
  const runs = await runVariants(out, chosen, "chain", ui, common);
  const rows: ChainCompareRow[] = [];
  for (const { variant, summary, result } of runs) {
    for (const it of summary.iterations) {
      const spent = result.spent.find((s) => s.t === it.t);
      const evaluation = result.evals.find((e) => e.t === it.t);
      rows.push({
        variant: variant.name,
        t: it.t,
        accuracy: it.accuracy,
        p_correct: evaluation?.metrics.p_correct ?? null,
        pairs: result.pairs.find((p) => p.t === it.t)?.composition.total ?? 0,
        judgments: spent?.judgments ?? 0,
        tokens: spent?.tokens ?? 0,
        seconds: it.seconds,
      });
    }
  }
  const markdown = toMarkdown(rows);
  writeFileAtomic(join(out, "compare.md"), markdown);
  writeFileAtomic(join(out, "compare.json"), `${JSON.stringify(rows, null, 2)}\n`);
  return { rows, markdown };
}

function toMarkdown(rows: readonly ChainCompareRow[]): string {
  const f = (x: number | null) => (x === null ? "–" : x.toFixed(3));
  return `${[
    "| variant | t | accuracy | P(correct chain) | pairs | oracle calls | tokens sampled | seconds |",
    "|---|---|---|---|---|---|---|---|",
    ...rows.map(
      (r) =>
        `| ${r.variant} | ${r.t} | ${f(r.accuracy)} | ${f(r.p_correct)} | ${r.pairs} | ${r.judgments} | ${r.tokens} | ${r.seconds.toFixed(1)} |`,
    ),
  ].join("\n")}\n`;
}
