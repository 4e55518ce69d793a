/**
 * The annotate stage of instance-level pairs: every prompt's candidate set {y^1..y^K, y_gold} judged
 * by the train oracle (scores, or pairwise preferences turned into win-rate estimates r^), and each
 * of pi_t's samples checked for defects. Writes iterations/t/annotations.jsonl.
 */
import { join } from "node:path";
import { isDefective } from "../core/defects.js";
import type { Candidate } from "../core/pairs.js";
import { negativeId } from "../core/prompted-pairs.js";
import { preferencesFromScores, winRateEstimates } from "../core/winrate.js";
import { pairwiseWinRates } from "../oracle/index.js";
import { readJsonl } from "../util/jsonl.js";
import type { RunOracle } from "./oracle.js";
import type { PairSourceContext } from "./pair-source.js";
import { iterDir } from "./paths.js";
import { openTrainOracle } from "./policy-oracles.js";
import { type AnnotationRow, sampleRowSchema } from "./records.js";
import { writeJsonlAt } from "./stages.js";

/** Judges every prompt's candidate set {y^1..y^K, y_gold}; r^ counts only pi_t's samples as opponents. */
export async function annotateStage(
  ctx: PairSourceContext,
  t: number,
): Promise<{ calls: number; failed: number }> {
  const { config } = ctx;
  const trainOracle = config.train_oracle && (await openTrainOracle(config.train_oracle, ctx.runDir, t));
  try {
    return await annotateWith(ctx, t, trainOracle ?? ctx.oracle);
  } finally {
    trainOracle?.close();
  }
}

async function annotateWith(
  ctx: PairSourceContext,
  t: number,
  oracle: RunOracle,
): Promise<{ calls: number; failed: number }> {
  const { config } = ctx;
  const rows = readJsonl(join(ctx.runDir, iterDir(t), "samples.jsonl"), sampleRowSchema);
  const callsBefore = oracle.calls();
  const defects = { n: config.pairs.defects.n, maxRepeatFraction: config.pairs.defects.max_repeat_fraction };
  const out: AnnotationRow[] = [];
  let failed = 0;
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!;
    // A failed sample is never a candidate; the others keep their sample index in their id.
    const ids: string[] = [];
    const texts: string[] = [];
    const sources: Candidate["source"][] = [];
    row.samples.forEach((s, j) => {
      if (s === null) return;
      ids.push(`s${j}`);
      texts.push(s.text);
      sources.push("student");
    });
    const negatives = (row.negatives ?? []).flatMap((s, j) => (s === null ? [] : [{ j, text: s.text }]));
    if (config.sampling.include_gold && row.gold !== undefined) {
      ids.push("gold");
      texts.push(row.gold);
      sources.push("teacher");
    }
    const students = sources.flatMap((s, j) => (s === "student" ? [j] : []));
    let scores: (number | null)[] = texts.map(() => null);
    let winRates: (number | null)[] = texts.map(() => null);
    if (config.pairs.rule !== "spin" && config.pairs.rule !== "prompted") {
      let matrix: (number | null)[][];
      if (config.pairs.rule === "score" || oracle.mode === "pointwise") {
        scores = await oracle.score(row.prompt, texts);
        matrix = preferencesFromScores(scores);
      } else {
        matrix = (
          await pairwiseWinRates(
            async (p, a, b) => ({ preference: await oracle.compare(p, a, b) }),
            row.prompt,
            texts,
          )
        ).matrix;
      }
      winRates = winRateEstimates(matrix, { opponents: students });
      failed += winRates.filter((w) => w === null).length;
    }
    out.push({
      id: row.id,
      prompt: row.prompt,
      candidates: texts.map((text, j) => ({
        id: ids[j]!,
        source: sources[j]!,
        text,
        score: scores[j] ?? null,
        winRate: winRates[j] ?? null,
        defect: sources[j] === "student" && isDefective(text, defects),
      })),
    });
    // Only-prompting: the answers under the worse-answer prefix are candidates too, never judged.
    out[out.length - 1]!.candidates.push(
      ...negatives.map(({ j, text }) => ({
        id: negativeId(j),
        source: "student" as const,
        text,
        score: null,
        winRate: null,
        defect: isDefective(text, defects),
      })),
    );
    ctx.progress(`${t}/annotate`, i + 1, rows.length);
  }
  writeJsonlAt(ctx.runDir, `${iterDir(t)}/annotations.jsonl`, out);
  return { calls: oracle.calls() - callsBefore, failed };
}
