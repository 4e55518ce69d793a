import { Rng } from "./rng.js";

/**
 * SELM's y_e ~ pi_ref for a prompt: one of pi_t's own samples, drawn uniformly (the samples are
 * independent draws of pi_t, so a uniform pick is a draw of pi_t), or undefined when there is none.
 */
export function exploreSample(
  promptId: string,
  candidates: readonly { source: "teacher" | "student"; text: string }[],
  seed: number,
  iteration: number,
): string | undefined {
  const students = candidates.filter((c) => c.source === "student");
  if (students.length === 0) return undefined;
  return students[Rng.derive(seed, "explore", iteration, promptId).int(students.length)]!.text;
}
