/**
 * LoRA beside full fine-tuning on config L (SmolLM2-135M's shape), for `npm run bench:engine`: the same
 * random model, tokens and cross-entropy step (AdamW lr 1e-4), once training every weight and once
 * training a rank-16 adapter on all seven projections with the base frozen. Each run is its own child
 * process, so that its peak RSS is its own; the two alternate, best of LORA_ROUNDS each.
 */
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { LORA_TARGETS, LoraAdapter, loraConfigSchema } from "../src/model/lora.js";
import { CausalLM } from "../src/model/model.js";
import { benchChild, languageModelStep } from "./child.js";

/** SmolLM2-135M's shape (random weights). */
export const CONFIG_L = {
  vocab_size: 49152,
  hidden_size: 576,
  intermediate_size: 1536,
  num_hidden_layers: 30,
  num_attention_heads: 9,
  num_key_value_heads: 3,
  tie_word_embeddings: true,
};
const LORA = { r: 16, alpha: 32, target_modules: [...LORA_TARGETS] };
/** A laptop-sized micro-batch: 4 sequences of 128 tokens. */
const BATCH = 4;
const SEQ = 128;
const WARMUP = 1;
const STEPS = 2;
const LORA_ROUNDS = 2;

export type LoraBenchKind = "lora" | "full";

export interface LoraRun {
  kind: LoraBenchKind;
  trainTokensPerS: number;
  peakRssMb: number;
  trainableParams: number;
  /** milliseconds per training step in each phase of the decoder (wall time) */
  trainStepMs: Record<string, number>;
}

/** The child's side: one kind of training on L, its speed and peak RSS printed as one JSON line. */
export function loraBenchChild(kind: LoraBenchKind): void {
  const config = parseConfig(CONFIG_L, "config L");
  const model = CausalLM.init(config, 0);
  if (kind === "lora")
    model.attachAdapter(LoraAdapter.init(config, loraConfigSchema.parse(LORA), 0), { train: true });
  const { step } = languageModelStep(model, Rng.derive(0, "bench-lora"), BATCH, SEQ, 1e-4);
  for (let i = 0; i < WARMUP; i++) step();
  engine().kernelProfile(); // resets the phase clocks
  const t = performance.now();
  for (let i = 0; i < STEPS; i++) step();
  const seconds = (performance.now() - t) / 1e3 / STEPS;
  const trainStepMs: Record<string, number> = {};
  let inPhases = 0;
  for (const [phase, s] of Object.entries(engine().kernelProfile())) {
    trainStepMs[phase] = (s / STEPS) * 1e3;
    inPhases += s / STEPS;
  }
  trainStepMs["other (optimizer, JS)"] = (seconds - inPhases) * 1e3;
  const run: LoraRun = {
    kind,
    trainTokensPerS: (BATCH * SEQ) / seconds,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
    trainableParams: model.trainable.params.length,
    trainStepMs,
  };
  console.log(JSON.stringify(run));
}

/**
 * Full fine-tuning and LoRA on L, alternating so that a noisy neighbour hits both alike; `script` run
 * with `childFlag kind` must call loraBenchChild(kind). Speeds are each kind's best round; peak RSS its
 * smallest (a run's own footprint, not the machine's noise).
 */
export function loraBench(script: string, childFlag: string): { full: LoraRun; lora: LoraRun } {
  const runs: LoraRun[] = [];
  for (let round = 0; round < LORA_ROUNDS; round++) {
    for (const kind of ["full", "lora"] as const) {
      const r = benchChild<LoraRun>(script, [childFlag, kind]);
      console.log(
        `config L ${kind} round ${round + 1}: ${r.trainTokensPerS.toFixed(0)} train tok/s, peak RSS ${r.peakRssMb.toFixed(0)} MB, ${(r.trainableParams / 1e6).toFixed(2)}M trained`,
      );
      runs.push(r);
    }
  }
  const best = (kind: LoraBenchKind): LoraRun => {
    const mine = runs.filter((r) => r.kind === kind);
    return {
      ...mine.reduce((a, b) => (a.trainTokensPerS >= b.trainTokensPerS ? a : b)),
      peakRssMb: Math.min(...mine.map((r) => r.peakRssMb)),
    };
  };
  const full = best("full");
  const lora = best("lora");
  for (const r of [full, lora]) {
    const phases = Object.entries(r.trainStepMs).map(([phase, ms]) => `${phase} ${ms.toFixed(0)}`);
    console.log(`config L ${r.kind}: training step, ms per phase: ${phases.join(", ")}`);
  }
  console.log(
    `config L (batch ${BATCH} x ${SEQ}): LoRA r ${LORA.r} ${(lora.trainTokensPerS / full.trainTokensPerS).toFixed(3)}x the full fine-tune's tokens/s, ` +
      `${(lora.peakRssMb / full.peakRssMb).toFixed(3)}x its peak RSS`,
  );
  return { full, lora };
}
