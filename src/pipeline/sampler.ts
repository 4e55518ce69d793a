/**
 * Where a run's samples come from. The sample and eval stages open the policy checkpoint they sample
 * (pi_t, pi_{t+1}) once, draw every prompt's K responses through the session, and close it. The
 * native engine is the default; `openai` (remote.ts) samples from any OpenAI-compatible server. A new
 * way of sampling whole responses (another engine or server) is one more implementation of `Sampler`
 * and one more entry in `SAMPLERS`, not a branch in run.ts.
 */
import type { RunConfig } from "./config.js";
import {
  loadPolicy,
  type PolicyPrompt,
  type SampledText,
  type SampleOptions,
  sampleResponses,
} from "./policy.js";
import { remoteSampler } from "./remote.js";

export interface SamplerSession {
  /**
   * K samples per prompt, `result[p][k]`, each with its exact response token ids (or re-tokenised,
   * where a server does not return ids). A sample the backend failed to produce is `null`: it is never
   * a candidate.
   */
  sample(
    prompts: readonly PolicyPrompt[],
    options: SampleOptions,
    progress?: (done: number, total: number) => void,
  ): Promise<(SampledText | null)[][]>;
  /** Releases the policy (a launched server is stopped). */
  close(): Promise<void>;
}

export interface Sampler {
  /** Serves the checkpoint in `policyDir` for one stage (`stage` names it in messages and logs). */
  open(policyDir: string, stage: string): Promise<SamplerSession>;
}

/** Prompts sampled between two saves of a sampling stage's progress (`keptBatches`). */
export const PROMPTS_PER_BATCH = 32;

/** Serves the checkpoint in `policyDir` through `sampler` for the length of one stage's `work`. */
export async function withSession<T>(
  sampler: Sampler,
  policyDir: string,
  stage: string,
  work: (session: SamplerSession) => Promise<T>,
): Promise<T> {
  const session = await sampler.open(policyDir, stage);
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}

/** In-process sampling on the native engine (src/model/generate.ts): the default. */
export function engineSampler(): Sampler {
  return {
    async open(policyDir) {
      const policy = loadPolicy(policyDir);
      return {
        sample: (prompts, options, progress) => sampleResponses(policy, prompts, options, progress),
        close: async () => {},
      };
    },
  };
}

export type SamplerConfig = RunConfig["sampler"];

export interface SamplerContext {
  runDir: string;
  /** The run's seed (a launch command's `{seed}`). */
  seed: number;
  env: NodeJS.ProcessEnv;
}

const SAMPLERS: {
  [K in SamplerConfig["kind"]]: (config: Extract<SamplerConfig, { kind: K }>, ctx: SamplerContext) => Sampler;
} = {
  engine: () => engineSampler(),
  openai: (config, ctx) => remoteSampler(config, ctx),
};

export function createSampler(config: SamplerConfig, ctx: SamplerContext): Sampler {
  const make = SAMPLERS[config.kind] as (c: SamplerConfig, x: SamplerContext) => Sampler;
  return make(config, ctx);
}
