/**
 * `dno init --task hf`: DNO on a real Hugging Face model directory (any tokenizer; tested with the
 * SentencePiece-style shared/models/babyllama-105). The task: "Shout dog:" is answered " DOG", and the
 * oracle prefers a correct answer with a trailing "!" (" DOG!"), which the teacher rarely writes. SFT
 * teaches the task, DNO finds the "!". The settings are the sweep's (README: tuning).
 */
import { Rng } from "../core/rng.js";
import { DEFAULT_TASK, randomWords } from "../demo/task.js";
import { toJsonl } from "../util/jsonl.js";
import { flow } from "./demo-task.js";
import type { InitFiles } from "./tasks.js";

export const HF_SPLITS = { sft: 3000, dno: 1200, validation: 60, eval: 120 } as const;
/** Fraction of prompts on which the teacher leaves a letter lower-case, and how often it adds "!". */
const TEACHER = { errorRate: 0.1, bangRate: 0.2 };

export const hfTemplateSettings = {
  sft: { lr: 1e-3, batch_size: 32, epochs: 2, warmup_steps: 20 },
  sampling: { samples_per_prompt: 5, temperature: 1, top_p: 1, max_new_tokens: 12 },
  pairs: { rule: "win-rate", pairs_per_prompt: 2, replay: [0.3, 0.15] },
  objective: { name: "dno-prct", beta: 0.3 },
  train: { lr: 2e-5, batch_size: 16, epochs: 2, warmup_steps: 5, lr_decay: 0.7 },
  eval: { samples_per_prompt: 4, temperature: 1, top_p: 1 },
};

export function shoutPrompt(word: string): string {
  return `Shout ${word}:`;
}

/** The teacher's answer: upper case with a leading space (it continues the prompt), sometimes wrong. */
export function shoutTeacher(word: string, seed: number): string {
  const rng = Rng.derive(seed, "shout-teacher", word);
  let letters = word.toUpperCase();
  if (rng.float() < TEACHER.errorRate) {
    const i = rng.int(word.length);
    letters = letters.slice(0, i) + word[i] + letters.slice(i + 1);
  }
  return ` ${letters}${rng.float() < TEACHER.bangRate ? "!" : ""}`;
}

function config(modelPath: string, seed: number): string {
  const s = hfTemplateSettings;
  return `# dno run config: DNO on a Hugging Face model directory. The task ("Shout dog:" -> " DOG", and the
# oracle prefers " DOG!") is a stand-in: replace the prompt files and oracle.mjs with your own.
# Paths are relative to this file. Run: dno run --config dno.yaml
# Every key is in README.md's config reference; dno run writes the full config it used to run/config.yaml.
seed: ${seed}
run_dir: run

model:
  path: ${JSON.stringify(modelPath)}   # config.json, model.safetensors (or shards), tokenizer.json

# SFT on the teacher's answers first (pi_ref = the SFT model). Drop this section if your model already
# does the task; DNO needs a policy whose own samples sometimes win.
sft: ${flow({ data: "sft.jsonl", ...s.sft })}

data:
  prompts: prompts.jsonl
  eval: eval.jsonl
  validation: validation.jsonl    # chooses the best iterate (without it the result is the last)
  prompts_per_iteration: ${HF_SPLITS.dno / 3}

oracle: { kind: programmatic, module: oracle.mjs }
task_metrics: metrics.mjs

iterations: 3
sampling: ${flow(s.sampling)}
pairs: ${flow(s.pairs)}
# The sweep (README: tuning) chose beta and the learning rate: on a pretrained model (babyllama-105)
# 5e-5 collapsed the policy by iteration 2 (beta 0.1) or 3 (beta 0.3); 2e-5 with beta 0.3 improved
# every iteration.
objective: ${flow(s.objective)}
train: ${flow(s.train)}
eval: ${flow(s.eval)}
guards: { stop_on_collapse: true }   # stop at the first collapse and keep the last good iterate
`;
}

const ORACLE = `// P(a beats b | prompt) for "Shout <word>:" prompts. A correct answer (the word in upper case, a
// trailing "!" allowed) beats a wrong one; two wrong answers tie; between two correct answers the one
// with "!" wins 80% of the time. Leading and trailing spaces do not matter.
export function shout(prompt, answer) {
  const word = /^Shout ([a-z]+):$/.exec(prompt)?.[1];
  const m = /^ *([A-Z]+)(!?) *$/.exec(answer);
  if (word === undefined || m === null || m[1] !== word.toUpperCase()) return null;
  return { bang: m[2] === "!" };
}

export function prefer(prompt, a, b) {
  const sa = shout(prompt, a);
  const sb = shout(prompt, b);
  if (sa === null || sb === null) return sa === sb ? 0.5 : sa === null ? 0 : 1;
  return sa.bang === sb.bang ? 0.5 : sa.bang ? 0.8 : 0.2;
}
`;

const METRICS = `// Task metrics on the held-out prompts after every iteration (config task_metrics).
import { shout } from "./oracle.mjs";

export function metrics(items) {
  const answers = items.flatMap((item) => item.samples.map((s) => shout(item.prompt, s)));
  const correct = answers.filter((a) => a !== null);
  return {
    accuracy: correct.length / answers.length,
    exclaimed: correct.length === 0 ? 0 : correct.filter((a) => a.bang).length / correct.length,
  };
}
`;

/** The seed draws the words and the teacher's answers (a task instance) and seeds the run. */
export function hfTaskFiles(modelPath: string, seed = 1): InitFiles {
  const { sft, dno, validation, eval: evalCount } = HF_SPLITS;
  const words = randomWords(seed, sft + dno + validation + evalCount, DEFAULT_TASK);
  const rows = (from: number, count: number, name: string) =>
    toJsonl(
      words.slice(from, from + count).map((w, i) => ({
        id: `${name}-${i}`,
        prompt: shoutPrompt(w),
        gold: shoutTeacher(w, seed),
      })),
    );
  return {
    "dno.yaml": config(modelPath, seed),
    "oracle.mjs": ORACLE,
    "metrics.mjs": METRICS,
    "sft.jsonl": rows(0, sft, "sft"),
    "prompts.jsonl": rows(sft, dno, "p"),
    "validation.jsonl": rows(sft + dno, validation, "val"),
    "eval.jsonl": rows(sft + dno + validation, evalCount, "eval"),
  };
}
