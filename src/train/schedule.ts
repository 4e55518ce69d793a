/** Learning-rate schedules: linear warmup from 0, then cosine or linear decay to minLr (or constant). */
export interface LrSchedule {
  /** peak learning rate, reached at the end of warmup */
  lr: number;
  warmupSteps: number;
  /** optimizer steps in the whole run (decay ends here) */
  totalSteps: number;
  decay: "cosine" | "linear" | "constant";
  /** the floor the decay ends at, as a fraction of lr (default 0) */
  minLrRatio?: number;
}

/** The learning rate for optimizer step `step` (0-based). */
export function learningRate(step: number, s: LrSchedule): number {
  if (step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  if (s.decay === "constant") return s.lr;
  const floor = s.lr * (s.minLrRatio ?? 0);
  const span = Math.max(1, s.totalSteps - s.warmupSteps);
  const progress = Math.min(1, (step - s.warmupSteps) / span);
  const shape = s.decay === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return floor + (s.lr - floor) * shape;
}
