/**
 * The engine's matrix-product precision: `fp32`, or `bf16` (mixed precision: GEMM inputs rounded to bf16,
 * float32 accumulation; weights, gradients, AdamW state, norms, softmax, losses and the residual stream
 * stay float32), or `auto`. Every CausalLM takes the process default when it is made; `--precision`
 * (any command), the run config's `precision` and DNO_PRECISION set that default, in that order of
 * priority.
 */
import { engine } from "../engine/index.js";
import { DnoError } from "../util/errors.js";

export const PRECISIONS = ["auto", "bf16", "fp32"] as const;
export type Precision = (typeof PRECISIONS)[number];
export type ResolvedPrecision = Exclude<Precision, "auto">;

/**
 * `auto` picks bf16 on a CPU with bf16 hardware (AMX or AVX512-BF16) for models whose matrices are large
 * enough to gain from it: below this hidden size the packing to bf16 costs about what the faster products
 * save (README, "Mixed precision"), and tiny models (the demo's, the tests') keep float32's exactness.
 */
export const AUTO_BF16_MIN_HIDDEN = 512;

export function parsePrecision(value: string, where: string): Precision {
  if (!(PRECISIONS as readonly string[]).includes(value)) {
    throw new DnoError(
      `${where}: precision must be one of ${PRECISIONS.join(", ")}, got ${JSON.stringify(value)}`,
    );
  }
  return value as Precision;
}

/** What `p` means for a model of this hidden size on this machine. */
export function resolvePrecision(p: Precision, hiddenSize: number): ResolvedPrecision {
  if (p !== "auto") return p;
  return hiddenSize >= AUTO_BF16_MIN_HIDDEN && engine().bgemmHasHardware() ? "bf16" : "fp32";
}

let current: { precision: Precision; fromFlag: boolean } | undefined;

/** The precision new models take. */
export function defaultPrecision(): Precision {
  if (!current) {
    const env = process.env.DNO_PRECISION;
    current = { precision: env ? parsePrecision(env, "DNO_PRECISION") : "auto", fromFlag: false };
  }
  return current.precision;
}

/** Sets the default from the command line (`flag`), or from a run config, which a flag overrides. */
export function setDefaultPrecision(p: Precision, source: "flag" | "config"): void {
  if (source === "config" && current?.fromFlag) return;
  current = { precision: p, fromFlag: source === "flag" };
}
