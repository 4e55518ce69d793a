/**
 * SPO in a run (config `objective.spo`): each training pair brings its self-supervised samples
 * (src/core/spo.ts), and the batch's loss is the objective's plus `weight` times the degree loss.
 * Samples are drawn once per pair from Rng.derive(seed, "spo", t, pair index), so a resumed run and
 * every epoch see the same ones.
 */
import { Rng } from "../core/rng.js";
import { type SpoSample, spoLabels, spoQuestion, spoSamples, withDegreeLoss } from "../core/spo.js";
import type { RunConfig } from "./config.js";
import type { TextExample } from "./policy.js";

export interface DegreeUnit {
  prompt: string;
  samples: SpoSample[];
}

type SeqLoss = (seqLogprobs: Float64Array) => { loss: number; grad: Float64Array };

export interface DegreeTask {
  /** The self-supervised samples of pair `index`. */
  unitOf(pair: { prompt: string; chosenText: string; rejectedText: string }, index: number): DegreeUnit;
  /** The label sequences of a batch's samples, laid out after the pairs' own examples. */
  examples(units: readonly DegreeUnit[]): TextExample[];
  /** The objective's loss over the first `alignCount` log-probs plus the degree loss over the rest. */
  loss(align: SeqLoss, alignCount: number, units: readonly DegreeUnit[]): SeqLoss;
}

export function degreeTask(config: RunConfig, t: number): DegreeTask | undefined {
  const spo = config.objective.spo;
  if (spo === undefined) return undefined;
  const options = { degrees: spo.degrees, unit: spo.unit, samplesPerResponse: spo.samples_per_response };
  const labels = spoLabels(spo.degrees);
  return {
    unitOf: (pair, index) => ({
      prompt: pair.prompt,
      samples: spoSamples(
        pair.chosenText,
        pair.rejectedText,
        options,
        Rng.derive(config.seed, "spo", t, index),
      ),
    }),
    examples: (units) =>
      units.flatMap((u) =>
        u.samples.flatMap((s) =>
          labels.map((label) => ({ prompt: spoQuestion(u.prompt, s.response), response: label })),
        ),
      ),
    loss: (align, alignCount, units) =>
      withDegreeLoss(
        align,
        alignCount,
        units.flatMap((u) => u.samples.map((s) => s.label)),
        labels.length,
        spo.weight,
      ),
  };
}
