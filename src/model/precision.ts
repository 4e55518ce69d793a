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
 * Whether `auto` picks bf16 on a CPU with bf16 hardware (AMX or AVX512-BF16). Kept false: see README
 * ("Mixed precision") for what held and what did not on the demo and the numerics tests.
 */
const AUTO_PREFERS_BF16 = false;

export function parsePrecision(value: string, where: string): Precision {
  if (!(PRECISIONS as readonly string[]).includes(value)) {
    throw new DnoError(
      `${where}: precision must be one of ${PRECISIONS.join(", ")}, got ${JSON.stringify(value)}`,
    );
  }
  return value as Precision;
}

/** What `p` means on this machine: `auto` is bf16 only where the CPU has bf16 hardware and it is preferred. */
export function resolvePrecision(p: Precision): ResolvedPrecision {
  if (p !== "auto") return p;
  return AUTO_PREFERS_BF16 && engine().bgemmHasHardware() ? "bf16" : "fp32";
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
