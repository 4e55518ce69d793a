/**
 * Instance-level pairs (DNO-Prct's Algorithm 2 and every method that judges whole responses): per
 * iteration t, the stages
 *
 *   t/sample     iterations/t/samples.jsonl: K samples of pi_t per prompt (and, for only-prompting,
 *                K under the iteration's worse-answer prefix)
 *   t/annotate   iterations/t/annotations.jsonl: oracle judgments, r^, defects (annotate.ts)
 *   t/pairs      iterations/t/pairs.jsonl: the pair rule's pairs (goal-conditioned for reward-augmented
 *                DPO), replay, offline data
 *
 * Offline DPO samples and judges only in iteration 1 and trains on its pairs again; DICE's first round
 * trains on the offline preference file alone.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { exploreSample } from "../core/explore.js";
import { getObjective } from "../core/objectives.js";
import { type Pair, pairComposition, scorePairs, spinPairs, winRatePairs } from "../core/pairs.js";
import { negativePrefix, promptedPairs } from "../core/prompted-pairs.js";
import { withReplay } from "../core/replay.js";
import { deriveSeed, Rng } from "../core/rng.js";
import { DnoError } from "../util/errors.js";
import { readInputRecords, readJsonl } from "../util/jsonl.js";
import { annotateStage } from "./annotate.js";
import { offlineFirstRound } from "./config.js";
import type { PromptRow } from "./data.js";
import { generationPrompt, goalPairs, pairPrompt } from "./goals.js";
import type { IterationPairs, PairSource, PairSourceContext } from "./pair-source.js";
import { iterDir, policyPath } from "./paths.js";
import {
  encodePromptText,
  encodeResponse,
  loadPolicyText,
  type PolicyPrompt,
  type PolicyText,
  responseIds,
} from "./policy.js";
import {
  type AnnotationRow,
  annotationRowSchema,
  offlinePreferenceSchema,
  type PairRow,
  pairRowSchema,
  type SampleRow,
  sampleRowSchema,
} from "./records.js";
import { PROMPTS_PER_BATCH, withSession } from "./sampler.js";
import { keptBatches, writeJsonlAt } from "./stages.js";

/** The instance-level pair source: t/sample, t/annotate, t/pairs. */
export function instancePairs(ctx: PairSourceContext): PairSource {
  return {
    async pairs(t, prompts): Promise<IterationPairs> {
      const { config, stage } = ctx;
      const dir = iterDir(t);
      // Offline DPO: every iteration trains on the first iteration's pairs again.
      const dataT = config.pairs.offline ? 1 : t;
      let spent: IterationPairs["spent"];
      if (dataT === t && !(offlineFirstRound(config) && t === 1)) {
        const s = await stage(`${t}/sample`, [`${dir}/samples.jsonl`], () => sampleStage(ctx, t, prompts));
        const a = await stage(`${t}/annotate`, [`${dir}/annotations.jsonl`], () => annotateStage(ctx, t));
        spent = { tokens: s.tokens, judgments: a.calls };
      }
      const composition = await stage(`${t}/pairs`, [`${dir}/pairs.jsonl`], () => pairStage(ctx, t, dataT));
      return { composition, ...(spent && { spent }) };
    },
  };
}

async function sampleStage(
  ctx: PairSourceContext,
  t: number,
  partition: readonly PromptRow[],
): Promise<{ prompts: number; samples: number; failed: number; tokens: number }> {
  const { config } = ctx;
  const s = config.sampling;
  const K = s.samples_per_prompt;
  const kept = (key: string) => `${iterDir(t)}/${key}.partial`;
  return withSession(ctx.sampler, join(ctx.runDir, policyPath(t)), `${t}/sample`, async (session) => {
    const sample = (prompts: PolicyPrompt[], key: string) =>
      keptBatches(ctx.runDir, kept(key), prompts.length, PROMPTS_PER_BATCH, (start, end) =>
        session.sample(
          prompts.slice(start, end),
          {
            samplesPerPrompt: K,
            temperature: s.temperature,
            topP: s.top_p,
            topK: s.top_k,
            maxNewTokens: s.max_new_tokens,
            seed: deriveSeed(config.seed, key, t),
            firstPromptIndex: start,
          },
          (done) => ctx.progress(`${t}/${key}`, start * K + done, prompts.length * K),
        ),
      );
    const samples = await sample(
      partition.map((r) => generationPrompt(config, t)(r.prompt)),
      "sample",
    );
    const prefixes = config.pairs.rule === "prompted" ? config.pairs.negative_prefixes! : undefined;
    const negatives =
      prefixes &&
      (await sample(
        partition.map((r) => negativePrefix(prefixes, t) + r.prompt),
        "sample-negative",
      ));
    const rows: SampleRow[] = partition.map((r, i) => ({
      ...r,
      samples: samples[i]!,
      ...(negatives && { negatives: negatives[i]! }),
    }));
    writeJsonlAt(ctx.runDir, `${iterDir(t)}/samples.jsonl`, rows);
    for (const key of ["sample", "sample-negative"])
      rmSync(join(ctx.runDir, kept(key)), { recursive: true, force: true });
    const failed = rows.reduce((n, r) => n + r.samples.filter((x) => x === null).length, 0);
    const tokens = rows.reduce((n, r) => n + r.samples.reduce((m, x) => m + (x?.tokens.length ?? 0), 0), 0);
    return { prompts: rows.length, samples: rows.length * s.samples_per_prompt - failed, failed, tokens };
  });
}

/**
 * iterations/t/pairs.jsonl: the pair rule over the annotations (relabelled with goals for
 * reward-augmented DPO), replayed pairs of earlier iterations and offline data, each with the ids it
 * trains on; or DICE's offline file alone, or iteration dataT's pairs again (offline DPO).
 */
async function pairStage(ctx: PairSourceContext, t: number, dataT: number) {
  const { config, runDir } = ctx;
  const readPairs = (k: number) => readJsonl(join(runDir, iterDir(k), "pairs.jsonl"), pairRowSchema);
  let rows: PairRow[];
  const offlineFile = config.pairs.offline_data?.file;
  const policy = loadPolicyText(join(runDir, policyPath(t)));
  if (offlineFirstRound(config) && t === 1) {
    // DICE's first round: DPO on the offline preference data alone.
    rows = readOfflinePairs(offlineFile!, t, policy);
  } else if (dataT !== t) {
    // Offline: every iteration trains on the first iteration's pairs again.
    rows = readPairs(dataT).map((p) => ({ ...p, iteration: t, replayedFrom: dataT }));
  } else {
    const annotations = readJsonl(join(runDir, iterDir(t), "annotations.jsonl"), annotationRowSchema);
    const p = config.pairs;
    const options = {
      ...(p.min_positive !== undefined && { minPositive: p.min_positive }),
      ...(p.margin !== undefined && { margin: p.margin }),
      ...(p.student_margin !== undefined && { studentMargin: p.student_margin }),
      pairsPerPrompt: p.pairs_per_prompt,
      positiveSources: p.positive_sources,
    };
    const samples = new Map(
      readJsonl(join(runDir, iterDir(t), "samples.jsonl"), sampleRowSchema).map((r) => [r.id, r]),
    );
    const texts = new Map<string, AnnotationRow>();
    const fresh: Pair[] = [];
    for (const a of annotations) {
      texts.set(a.id, a);
      const build =
        p.rule === "spin"
          ? spinPairs(a.id, a.candidates, config.seed, t, p.pairs_per_prompt)
          : p.rule === "prompted"
            ? promptedPairs(a.id, a.candidates, t, p.pairs_per_prompt)
            : (p.rule === "score" ? scorePairs : winRatePairs)(a.id, a.candidates, options, config.seed, t);
      fresh.push(...goalPairs(config, build, a.candidates));
    }
    const earlier: PairRow[][] = [];
    for (let k = t - 1; k >= 1 && earlier.length < p.replay.length; k--) earlier.push(readPairs(k));
    const all: (Pair | PairRow)[] = withReplay(fresh, earlier, p.replay, config.seed, t);
    if (p.offline_data) {
      // DICE's experience replay: offline pairs make up `fraction` of the iteration's pairs.
      const { fraction } = p.offline_data;
      const count = Math.round((fraction / (1 - fraction)) * fresh.length);
      const pool = readOfflinePairs(p.offline_data.file, t, policy);
      all.push(...Rng.derive(config.seed, "offline-replay", t).shuffle(pool).slice(0, count));
    }
    const explores = getObjective(config.objective.name).needs.includes("explore");
    rows = all.map((pair) => {
      if (pair.replayedFrom !== undefined) return pair as PairRow;
      const a = texts.get(pair.promptId)!;
      const c = (id: string) => a.candidates.find((x) => x.id === id)!;
      const explore = explores ? exploreSample(a.id, a.candidates, config.seed, t) : undefined;
      const ids = candidateIds(policy, samples.get(a.id)!);
      const prompt = pairPrompt(config, a.prompt, pair.goal);
      return {
        ...(explore !== undefined && {
          exploreText: explore.text,
          exploreIds: ids(explore.id, explore.text),
        }),
        ...pair,
        prompt: prompt.user,
        ...(prompt.system !== undefined && { system: prompt.system }),
        chosenText: c(pair.chosen).text,
        rejectedText: c(pair.rejected).text,
        chosenWinRate: c(pair.chosen).winRate,
        rejectedWinRate: c(pair.rejected).winRate,
        promptIds: encodePromptText(policy, prompt),
        chosenIds: ids(pair.chosen, c(pair.chosen).text),
        rejectedIds: ids(pair.rejected, c(pair.rejected).text),
      };
    });
  }
  if (rows.length === 0) {
    throw new DnoError(
      `iteration ${t}: no pairs passed the pair rule (pairs.rule ${config.pairs.rule}); lower pairs.margin`,
    );
  }
  writeJsonlAt(runDir, `${iterDir(t)}/pairs.jsonl`, rows);
  const offlineOnly = offlineFirstRound(config) && t === 1;
  return pairComposition(rows.filter((r) => r.replayedFrom === undefined || dataT !== t || offlineOnly));
}

/**
 * The ids a candidate is scored and trained on: a sample's (or a worse-answer sample's) ids as drawn,
 * closed by EOS when it ended with one; the gold answer tokenised, plus EOS.
 */
function candidateIds(policy: PolicyText, row: SampleRow): (id: string, text: string) => number[] {
  return (id, text) => {
    const negative = /^n(\d+)$/.exec(id);
    const drawn = id.startsWith("s")
      ? row.samples[Number(id.slice(1))]
      : negative
        ? row.negatives?.[Number(negative[1])]
        : undefined;
    return drawn
      ? responseIds(policy, drawn.tokens, drawn.finished)
      : encodeResponse(policy, text, encodePromptText(policy, row.prompt));
  };
}

/** The offline preference file's pairs, marked as replayed from iteration 0 (never built by the run). */
function readOfflinePairs(file: string, t: number, policy: PolicyText): PairRow[] {
  const records = readInputRecords(file, offlinePreferenceSchema, "preference pairs", (r) => r.id);
  return records.map(({ value: r }, i) => {
    const promptIds = encodePromptText(policy, r.prompt);
    return {
      promptId: `offline-${r.id ?? i + 1}`,
      chosen: "offline-chosen",
      rejected: "offline-rejected",
      chosenSource: "teacher",
      rejectedSource: "teacher",
      rule: "offline",
      margin: null,
      target: null,
      iteration: t,
      replayedFrom: 0,
      prompt: r.prompt,
      chosenText: r.chosen,
      rejectedText: r.rejected,
      chosenWinRate: null,
      rejectedWinRate: null,
      promptIds,
      chosenIds: encodeResponse(policy, r.chosen, promptIds),
      rejectedIds: encodeResponse(policy, r.rejected, promptIds),
    };
  });
}
