import { Rng } from "./rng.js";

/**
 * SELM's y_e ~ pi_ref for a prompt: one of pi_t's own samples (the candidate), drawn uniformly (the
 * samples are independent draws of pi_t, so a uniform pick is a draw of pi_t), or undefined when there
 * is none.
 */
export function exploreSample<C extends { source: "teacher" | "student"; text: string }>(
  promptId: string,
  candidates: readonly C[],
  seed: number,
  iteration: number,
): C | undefined {
  const students = candidates.filter((c) => c.source === "student");
  if (students.length === 0) return undefined;
  return students[Rng.derive(seed, "explore", iteration, promptId).int(students.length)]!;
}
