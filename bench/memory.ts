/**
 * `npm run bench:memory`: activation recomputation on config L (SmolLM2-135M's shapes, random weights),
 * training batch 8 x 256 with cross-entropy at every position and AdamW, three ways, each in a child
 * process of its own so that its peak RSS is its own:
 * - `pieces`: every layer's activations kept, the default maxBatchTokens (about 1 GiB of them: the
 *   batch runs in pieces, one forward + backward each);
 * - `whole`: every layer's activations kept for the whole batch at once (as bench:engine trains L);
 * - `recompute`: model.recompute, the default maxBatchTokens (which then holds the whole batch).
 * The precision is the process default (auto: bf16 where the CPU has bf16 hardware). The ways run in
 * ROUNDS rounds, each round in the other order (a machine that slows down mid-bench then slows every
 * way); each way reports its best tokens/s and its highest peak RSS. The last line is one JSON object:
 * each way's peak RSS and training tokens/s, and recompute's ratios to the others.
 */
import { fileURLToPath } from "node:url";
import { Rng } from "../src/core/rng.js";
import { parseConfig } from "../src/model/config.js";
import { CausalLM } from "../src/model/model.js";
import { benchChild, languageModelStep } from "./child.js";
import { BENCH_CONFIGS } from "./configs.js";

const BATCH = 8;
const SEQ = 256;
const WARMUP = 1;
const STEPS = 2;
const ROUNDS = 2;
const MODES = ["pieces", "whole", "recompute"] as const;
type Mode = (typeof MODES)[number];

interface MemoryRun {
  mode: Mode;
  precision: string;
  maxBatchTokens: number;
  trainTokensPerS: number;
  peakRssMb: number;
}

function child(mode: Mode): void {
  const config = parseConfig(BENCH_CONFIGS.L, "config L");
  const model = CausalLM.init(config, 0);
  model.recompute = mode === "recompute";
  if (mode === "whole") model.maxBatchTokens = BATCH * SEQ;
  const { step } = languageModelStep(model, Rng.derive(0, "bench-memory"), BATCH, SEQ, 1e-4);
  for (let i = 0; i < WARMUP; i++) step();
  const t = performance.now();
  for (let i = 0; i < STEPS; i++) step();
  const seconds = (performance.now() - t) / 1e3 / STEPS;
  const run: MemoryRun = {
    mode,
    precision: model.precision,
    maxBatchTokens: model.maxBatchTokens,
    trainTokensPerS: (BATCH * SEQ) / seconds,
    peakRssMb: process.resourceUsage().maxRSS / 1024,
  };
  console.log(JSON.stringify(run));
}

function main(): void {
  const childAt = process.argv.indexOf("--child");
  if (childAt >= 0) {
    child(process.argv[childAt + 1] as Mode);
    return;
  }
  const runs = new Map<Mode, MemoryRun>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of round % 2 === 0 ? MODES : [...MODES].reverse()) {
      const r = benchChild<MemoryRun>(fileURLToPath(import.meta.url), ["--child", mode]);
      console.log(
        `config L ${mode}, round ${round + 1} (${r.precision}, maxBatchTokens ${r.maxBatchTokens}): ` +
          `${r.trainTokensPerS.toFixed(0)} train tok/s, peak RSS ${r.peakRssMb.toFixed(0)} MB`,
      );
      const best = runs.get(mode);
      runs.set(mode, {
        ...r,
        trainTokensPerS: Math.max(r.trainTokensPerS, best?.trainTokensPerS ?? 0),
        peakRssMb: Math.max(r.peakRssMb, best?.peakRssMb ?? 0),
      });
    }
  }
  const get = (mode: Mode) => runs.get(mode)!;
  const ratio = (x: number, y: number) => Math.round((x / y) * 1000) / 1000;
  const recompute = get("recompute");
  console.log(
    JSON.stringify({
      bench: "memory",
      config: "L",
      batch: `${BATCH}x${SEQ}`,
      precision: recompute.precision,
      peak_rss_mb: Object.fromEntries(MODES.map((m) => [m, Math.round(get(m).peakRssMb)])),
      train_tokens_per_s: Object.fromEntries(MODES.map((m) => [m, Math.round(get(m).trainTokensPerS)])),
      rss_recompute_vs_whole: ratio(recompute.peakRssMb, get("whole").peakRssMb),
      rss_recompute_vs_pieces: ratio(recompute.peakRssMb, get("pieces").peakRssMb),
      speed_recompute_vs_whole: ratio(recompute.trainTokensPerS, get("whole").trainTokensPerS),
      speed_recompute_vs_pieces: ratio(recompute.trainTokensPerS, get("pieces").trainTokensPerS),
    }),
  );
}

main();
