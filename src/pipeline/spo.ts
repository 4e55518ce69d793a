/**
 * SPO in training (config `objective.spo`, train-args `spo`): each training pair brings its
 * self-supervised samples (src/core/spo.ts), and the batch's loss is the objective's plus `weight`
 * times the degree loss. Samples are drawn once per pair from Rng.derive(seed, "spo", pair index)
 * (seed: the iteration's training seed), so a resumed run and every epoch see the same ones.
 */
import { z } from "zod";
import { Rng } from "../core/rng.js";
import { type SpoSample, spoLabels, spoQuestion, spoSamples, withDegreeLoss } from "../core/spo.js";
import { encodePromptText, encodeResponse, type PolicyText, type TokenExample } from "./policy.js";

export const spoOptionsSchema = z
  .strictObject({
    weight: z.number().positive().max(1e6).default(0.1),
    degrees: z.number().int().min(2).max(5).default(3),
    unit: z.enum(["rake", "letters"]).default("rake"),
    samples_per_response: z.number().int().positive().max(5).default(1),
  })
  .refine((o) => o.samples_per_response <= o.degrees, {
    message: "samples_per_response must not exceed degrees",
    path: ["samples_per_response"],
  });
export type SpoOptions = z.infer<typeof spoOptionsSchema>;

export interface DegreeUnit {
  prompt: string;
  samples: SpoSample[];
}

type SeqLoss = (seqLogprobs: Float64Array) => { loss: number; grad: Float64Array };

export interface DegreeTask {
  /** The self-supervised samples of pair `index`. */
  unitOf(pair: { prompt: string; chosen: string; rejected: string }, index: number): DegreeUnit;
  /** The label sequences of a batch's samples, laid out after the pairs' own examples. */
  examples(units: readonly DegreeUnit[]): TokenExample[];
  /** The objective's loss over the first `alignCount` log-probs plus the degree loss over the rest. */
  loss(align: SeqLoss, alignCount: number, units: readonly DegreeUnit[]): SeqLoss;
}

export function degreeTask(spo: SpoOptions, seed: number, policy: PolicyText): DegreeTask {
  const options = { degrees: spo.degrees, unit: spo.unit, samplesPerResponse: spo.samples_per_response };
  const labels = spoLabels(spo.degrees);
  const labelIds = labels.map((label) => encodeResponse(policy, label));
  return {
    unitOf: (pair, index) => ({
      prompt: pair.prompt,
      samples: spoSamples(pair.chosen, pair.rejected, options, Rng.derive(seed, "spo", index)),
    }),
    examples: (units) =>
      units.flatMap((u) =>
        u.samples.flatMap((s) => {
          const prompt = encodePromptText(policy, spoQuestion(u.prompt, s.response));
          return labelIds.map((response) => ({ prompt, response }));
        }),
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
