/**
 * The chain task's metrics (config `task_metrics`) on the held-out prompts:
 * - accuracy: the fraction of evaluation samples whose answer is right;
 * - p_correct: the policy's exact probability of the teacher-free correct solution, averaged over
 *   prompts (how much mass the right chain of steps has, whatever was sampled).
 */
import type { LogprobsFn, TaskMetricsItem } from "../pipeline/task-metrics.js";
import { isCorrect, parseChain, solve } from "./chain.js";

export function metrics(items: TaskMetricsItem[], logprobs: LogprobsFn): Record<string, number> {
  let correct = 0;
  let total = 0;
  for (const item of items) {
    for (const s of item.samples) {
      total++;
      if (isCorrect(item.prompt, s)) correct++;
    }
  }
  const queries = items.flatMap((item) => {
    const chain = parseChain(item.prompt);
    return chain ? [{ prompt: item.prompt, response: solve(chain) }] : [];
  });
  const lp = logprobs(queries);
  const pCorrect = lp.reduce((sum, x) => sum + Math.exp(x), 0) / Math.max(1, lp.length);
  return { accuracy: correct / total, p_correct: pCorrect };
}
