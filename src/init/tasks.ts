/** `dno init`'s starting points: each writes a runnable (or fill-in-the-blanks) run folder. */
import { chatTaskFiles } from "./chat-task.js";
import { demoTaskFiles } from "./demo-task.js";
import { hfTaskFiles } from "./hf-task.js";

/** File name -> content. */
export type InitFiles = Record<string, string>;

export interface InitTask {
  description: string;
  /**
   * `model`: the --model directory (a placeholder path is written without one); `seed`: the task
   * instance (words, teacher answers) and the run's seed.
   */
  files(model: string | undefined, seed?: number): InitFiles;
  /** What to do after writing, given the config's path. */
  next(config: string, model: string | undefined): string;
}

const MODEL_PLACEHOLDER = "./my-model";

export const INIT_TASKS: Record<string, InitTask> = {
  demo: {
    description: "the demo's task (reverse a word), a tiny Llama from scratch: learns in minutes on 2 cores",
    files: (_model, seed) => demoTaskFiles(seed),
    next: (config) => `next: dno run --config ${config}`,
  },
  hf: {
    description: "your Hugging Face model directory (--model DIR) on a small task with a programmatic oracle",
    files: (model, seed) => hfTaskFiles(model ?? MODEL_PLACEHOLDER, seed),
    next: (config, model) =>
      model === undefined
        ? `next: set model.path in ${config} (or rerun with --model DIR), then dno run --config ${config}`
        : `next: dno run --config ${config}`,
  },
  chat: {
    description:
      "an instruction-tuned model judged by an LLM over an OpenAI-compatible server (placeholders)",
    files: (model) => chatTaskFiles(model ?? MODEL_PLACEHOLDER),
    next: (config) =>
      `next: fill in model.path and the oracle's baseUrl/model in ${config}, try the judge with dno judge, then dno run --config ${config}`,
  },
};
