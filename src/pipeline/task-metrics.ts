/**
 * Task metrics: a user module (config `task_metrics`) that turns a policy's evaluation samples into
 * named numbers (accuracy, exploitability, ...). It may ask for exact sequence log-probs of any
 * response under the evaluated policy.
 */
import { existsSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { DnoError } from "../util/errors.js";

export interface TaskMetricsItem {
  prompt: string;
  gold: string | undefined;
  samples: string[];
}

/** log pi(response | prompt) for each item, summed over the response's tokens (EOS included). */
export type LogprobsFn = (items: { prompt: string; response: string }[]) => Float64Array;

export type TaskMetricsFn = (
  items: TaskMetricsItem[],
  logprobs: LogprobsFn,
) => Record<string, number> | Promise<Record<string, number>>;

export async function loadTaskMetrics(file: string): Promise<TaskMetricsFn> {
  if (!existsSync(file)) throw new DnoError(`${file}: task_metrics module not found`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (e) {
    throw new DnoError(`${file}: cannot import the task_metrics module: ${(e as Error).message}`);
  }
  if (typeof mod.metrics !== "function") {
    throw new DnoError(`${file}: the task_metrics module must export a function metrics(items, logprobs)`);
  }
  const fn = mod.metrics as TaskMetricsFn;
  return async (items, logprobs) => {
    const out = await fn(items, logprobs);
    for (const [k, v] of Object.entries(out ?? {})) {
      if (typeof v !== "number") throw new DnoError(`${file}: metrics() returned a non-number for "${k}"`);
    }
    return out;
  };
}
