/**
 * The demo's task metrics (config `task_metrics`), computed on the held-out prompts:
 * - accuracy: the fraction of evaluation samples that are correct (any style);
 * - style_<name>: the policy's exact style frequencies among its correct
 *   answers, pi(correct answer in style s | x) normalised over s, averaged over prompts;
 * - exploitability: of that style mixture in the style game (src/demo/task.ts), 0 at the Nash mixture.
 */
import { logSumExp, softmax } from "../core/prob.js";
import type { LogprobsFn, TaskMetricsItem } from "../pipeline/task-metrics.js";
import { correctStyle, DEFAULT_TASK, render, reverse, STYLES, styleExploitability, wordOf } from "./task.js";

export function metrics(items: TaskMetricsItem[], logprobs: LogprobsFn): Record<string, number> {
  let correct = 0;
  let total = 0;
  for (const item of items) {
    for (const s of item.samples) {
      total++;
      if (correctStyle(item.prompt, s) !== null) correct++;
    }
  }
  const queries = items.flatMap((item) => {
    const letters = reverse(wordOf(item.prompt) ?? "");
    return STYLES.map((style) => ({ prompt: item.prompt, response: render(letters, style) }));
  });
  const lp = logprobs(queries);
  const n = STYLES.length;
  const freq = STYLES.map(() => 0);
  let pCorrect = 0;
  for (let i = 0; i < items.length; i++) {
    const styleLogprobs = lp.subarray(n * i, n * i + n);
    pCorrect += Math.exp(logSumExp(styleLogprobs));
    const f = softmax(styleLogprobs);
    for (let s = 0; s < n; s++) freq[s]! += f[s]! / items.length;
  }
  return {
    accuracy: correct / total,
    p_correct: pCorrect / items.length,
    ...Object.fromEntries(STYLES.map((name, s) => [`style_${name}`, freq[s]!])),
    exploitability: styleExploitability(freq, DEFAULT_TASK),
  };
}
