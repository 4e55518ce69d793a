/** The run's prompt files: `{id, prompt, gold?}` per JSONL line, checked once at the edge. */
import { z } from "zod";
import { checkFitsContext, checkMaxNewTokens } from "../model/context.js";
import { atLine, DnoError } from "../util/errors.js";
import { readInputRecords } from "../util/jsonl.js";
import type { RunConfig } from "./config.js";
import { highestGoalPrompt } from "./goals.js";
import type { PolicyPrompt, PolicyShape } from "./policy.js";

export const promptRowSchema = z.strictObject({
  id: z.string().min(1),
  prompt: z.string().min(1),
  /** The teacher's (gold) response. */
  gold: z.string().optional(),
});
export type PromptRow = z.infer<typeof promptRowSchema>;

/** Reads a prompt file (the shared input rules: no empty file, no duplicate id). */
export function readPrompts(file: string): PromptRow[] {
  return readPromptLines(file).map((r) => r.value);
}

/** `readPrompts`, each row with its line number. */
export function readPromptLines(file: string): { line: number; value: PromptRow }[] {
  return readInputRecords(file, promptRowSchema, "prompts", (r) => r.id);
}

/** Evaluation must be on held-out prompts: no prompt text may appear in both files. */
export function checkDisjoint(
  train: readonly PromptRow[],
  trainFile: string,
  heldOut: readonly PromptRow[],
  heldOutFile: string,
): void {
  const texts = new Set(train.map((r) => r.prompt));
  const shared = heldOut.find((r) => texts.has(r.prompt));
  if (shared) {
    throw new DnoError(
      `${heldOutFile}: prompt of id "${shared.id}" also appears in ${trainFile}; held-out prompts must be disjoint`,
    );
  }
}

export interface RunInputs {
  prompts: PromptRow[];
  eval: PromptRow[];
  validation?: PromptRow[];
  sft?: PromptRow[];
}

/**
 * Every input file of a run, read and checked: the shared input rules, held-out files disjoint from
 * the training prompts, SFT rows with gold answers, and every prompt (with its longest response, or
 * with its gold answer where that is trained on) within the model's context. Runs before a fresh run
 * directory is written to, so bad inputs leave nothing behind.
 */
export function readRunInputs(config: RunConfig, shape: PolicyShape): RunInputs {
  const lines = (file: string) => readPromptLines(file);
  const prompts = lines(config.data.prompts);
  const evalRows = lines(config.data.eval);
  const validation = config.data.validation ? lines(config.data.validation) : undefined;
  const sft = config.sft ? lines(config.sft.data) : undefined;
  const values = (rows: { value: PromptRow }[]) => rows.map((r) => r.value);
  checkDisjoint(values(prompts), config.data.prompts, values(evalRows), config.data.eval);
  if (validation) {
    checkDisjoint(values(prompts), config.data.prompts, values(validation), config.data.validation!);
    checkDisjoint(values(evalRows), config.data.eval, values(validation), config.data.validation!);
  }
  // The longest form of each prompt: conditioned on the highest goal under reward-augmented DPO.
  const asked = highestGoalPrompt(config);
  const maxNew = config.sampling.max_new_tokens;
  checkMaxNewTokens(maxNew, shape.context, "sampling.max_new_tokens");
  const sampled = (file: string, rows: { line: number; value: PromptRow }[]) => {
    for (const { line, value } of rows) {
      checkFitsContext(
        `${file}:${line}`,
        shape.promptTokens(asked(value.prompt)),
        maxNew,
        shape.context,
        "sampling.max_new_tokens",
      );
    }
  };
  const trained = (
    file: string,
    rows: { line: number; value: PromptRow }[],
    promptOf: (prompt: string) => PolicyPrompt,
  ) => {
    for (const { line, value } of rows) {
      if (value.gold === undefined) continue;
      const n = shape.promptTokens(promptOf(value.prompt)) + shape.responseTokens(value.gold);
      if (n > shape.context) {
        throw atLine(
          file,
          line,
          `prompt and gold answer are ${n} tokens, more than the model's context of ${shape.context} (max_position_embeddings)`,
        );
      }
    }
  };
  sampled(config.data.prompts, prompts);
  sampled(config.data.eval, evalRows);
  if (validation) sampled(config.data.validation!, validation);
  if (config.sampling.include_gold) trained(config.data.prompts, prompts, asked);
  if (sft) {
    for (const { line, value } of sft) {
      if (value.gold === undefined) throw atLine(config.sft!.data, line, 'SFT needs a "gold" answer');
    }
    trained(config.sft!.data, sft, config.sft!.goal_conditioned ? asked : (prompt) => prompt);
  }
  const T = partitionCount(config);
  const per = config.data.prompts_per_iteration ?? Math.floor(prompts.length / T);
  if (per < 1 || per * T > prompts.length) {
    throw new DnoError(
      `${config.data.prompts}: ${prompts.length} prompts cannot fill ${T} partitions of ${per} (data.prompts_per_iteration)`,
    );
  }
  return {
    prompts: values(prompts),
    eval: values(evalRows),
    ...(validation && { validation: values(validation) }),
    ...(sft && { sft: values(sft) }),
  };
}

/** Prompt partitions: one per iteration, or one for offline pairs. */
export function partitionCount(config: RunConfig): number {
  return config.pairs.offline ? 1 : config.iterations;
}
