/** Bench measurements that run in a child process of their own, so that its peak RSS is theirs alone. */
import { spawnSync } from "node:child_process";
import type { Rng } from "../src/core/rng.js";
import type { CausalLM, Example } from "../src/model/model.js";
import { AdamW } from "../src/train/adamw.js";
import { trainStep } from "../src/train/step.js";
import { DnoError } from "../src/util/errors.js";

/** Runs `node script ...args` and returns the last line of its stdout, parsed as JSON. */
export function benchChild<T>(script: string, args: readonly string[]): T {
  const r = spawnSync(process.execPath, [script, ...args], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0)
    throw new DnoError(`bench child ${args.join(" ")} exited ${r.status}: ${r.stderr.trim()}`);
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]!) as T;
}

/**
 * One training step as the reference tool's bench takes it: `batch` random sequences of seq + 1 tokens
 * (the first seq the input, the last seq the targets), mean cross-entropy at every position, AdamW with
 * PyTorch's defaults (weight decay 0.01, no clipping).
 */
export function languageModelStep(
  model: CausalLM,
  rng: Rng,
  batch: number,
  seq: number,
  lr: number,
): { step: () => void; examples: Example[] } {
  const optimizer = new AdamW(model, { weightDecay: 0.01, maxGradNorm: 0 });
  const examples: Example[] = Array.from({ length: batch }, () => {
    const tokens = Array.from({ length: seq + 1 }, () => rng.int(model.config.vocabSize));
    return { prompt: tokens.slice(0, 1), response: tokens.slice(1) };
  });
  const meanCrossEntropy = Object.assign(
    (seqLogprobs: Float64Array) => ({
      loss: -seqLogprobs.reduce((a, b) => a + b, 0) / (batch * seq),
      grad: new Float64Array(seqLogprobs.length).fill(-1 / (batch * seq)),
    }),
    { groupOf: (example: number) => example },
  );
  return { step: () => trainStep(model, optimizer, [{ examples, loss: meanCrossEntropy }], lr), examples };
}
