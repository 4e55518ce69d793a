/**
 * Sampling from a uniform mixture of models (Algorithm 1's output, the mixture of the iterates
 * pi_1..pi_T): each response comes from a member drawn uniformly for it. Members are loaded one at a
 * time, so the mixture costs the memory of one model.
 */
import { deriveSeed, Rng } from "../core/rng.js";
import { type GenerateOptions, generate, type Sample, type SamplingModel } from "./generate.js";

export interface MixtureSample extends Sample {
  /** The member (0-based) this response was drawn from; `logprob` is under that member. */
  member: number;
}

/**
 * result[p][k] is prompt p's sample k, drawn from member Rng.derive(seed, "mixture", p, k). The same
 * seed gives the same members and the same samples.
 */
export async function generateMixture(
  members: number,
  load: (member: number) => SamplingModel,
  prompts: readonly (readonly number[])[],
  options: GenerateOptions,
): Promise<MixtureSample[][]> {
  const K = options.samplesPerPrompt;
  const memberOf = prompts.map((_, p) =>
    Array.from({ length: K }, (_, k) => Rng.derive(options.seed, "mixture", p, k).int(members)),
  );
  const out: MixtureSample[][] = prompts.map(() => new Array<MixtureSample>(K));
  const total = prompts.length * K;
  let done = 0;
  for (let m = 0; m < members; m++) {
    const slots: [number, number][] = [];
    memberOf.forEach((ks, p) => {
      ks.forEach((mk, k) => {
        if (mk === m) slots.push([p, k]);
      });
    });
    if (slots.length === 0) continue;
    const before = done;
    const samples = await generate(
      load(m),
      slots.map(([p]) => prompts[p]!),
      {
        ...options,
        samplesPerPrompt: 1,
        seed: deriveSeed(options.seed, "mixture-member", m),
        onProgress: (finished) => options.onProgress?.(before + finished, total),
      },
    );
    slots.forEach(([p, k], i) => {
      out[p]![k] = { ...samples[i]![0]!, member: m };
    });
    done += slots.length;
  }
  return out;
}
