/**
 * Replay (Algorithm 2, step 4): iteration t trains on its fresh pairs plus up to 30% (as many as
 * 0.3 x the fresh count) of iteration t-1's fresh pairs, 15% of t-2's, ... as configured.
 */
import { DnoError } from "../util/errors.js";
import type { Pair } from "./pairs.js";
import { Rng } from "./rng.js";

export const PAPER_REPLAY_FRACTIONS: readonly number[] = [0.3, 0.15];

/**
 * `earlier[k]` holds the pairs built at iteration t-1-k (replayed copies in it are ignored, so a pair
 * is replayed from the iteration that built it, never compounded). The sample is drawn without
 * replacement with Rng.derive(seed, "replay", iteration, k); replayed copies carry `replayedFrom`.
 */
export function withReplay(
  fresh: readonly Pair[],
  earlier: readonly (readonly Pair[])[],
  fractions: readonly number[],
  seed: number,
  iteration: number,
): Pair[] {
  const out = [...fresh];
  for (let k = 0; k < Math.min(earlier.length, fractions.length); k++) {
    const f = fractions[k]!;
    if (!(f >= 0 && Number.isFinite(f))) throw new DnoError(`replay: fractions[${k}] must be >= 0, got ${f}`);
    const pool = earlier[k]!.filter((p) => p.replayedFrom === undefined);
    const count = Math.min(Math.floor(f * fresh.length), pool.length);
    const picked = Rng.derive(seed, "replay", iteration, k).shuffle(pool).slice(0, count);
    for (const p of picked) out.push({ ...p, replayedFrom: p.iteration });
  }
  return out;
}
