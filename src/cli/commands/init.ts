import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../../demo/task.js";
import { writeFileAtomic } from "../../util/atomic.js";
import { DnoError } from "../../util/errors.js";
import { toJsonl } from "../../util/jsonl.js";

const CONFIG = `# dno run config. Paths are relative to this file. Run: dno run --config dno.yaml
# Every field below except model, data and oracle has a default; \`dno run\` writes the full config it used
# (defaults filled in) to <run_dir>/config.yaml.
seed: 1
run_dir: run                      # state, samples, pairs, checkpoints, metrics.jsonl, report.html

model:
  # A Hugging Face Llama/Qwen2/Mistral checkpoint directory (config.json, model.safetensors, tokenizer.json):
  # path: ./my-model
  # or a tiny Llama trained from scratch with the built-in byte-level tokenizer:
  from_scratch: { hidden_size: 64, intermediate_size: 176, num_hidden_layers: 2, num_attention_heads: 4, max_position_embeddings: 48 }

sft:                              # optional: supervised fine-tuning on gold answers first (pi_ref = the SFT model)
  data: sft.jsonl                 # {"id", "prompt", "gold"} per line
  lr: 3.0e-3
  batch_size: 32
  epochs: 3

data:
  prompts: prompts.jsonl          # {"id", "prompt", "gold"?}: split into \`iterations\` non-overlapping partitions
  eval: eval.jsonl                # held-out prompts (gold = the teacher's answer, for the win rate vs the teacher)
  # validation: validation.jsonl  # held-out prompts that choose the best iterate (default: the last one)

oracle:                           # where the preferences come from (see \`dno judge\`)
  kind: programmatic
  module: oracle.mjs              # exports prefer(prompt, a, b) -> P(a beats b) in [0, 1]
  # kind: llm-judge               # an OpenAI-compatible judge; the key is read from the named variable
  # mode: pointwise
  # baseUrl: https://api.openai.com/v1
  # model: gpt-4o-mini
  # apiKeyEnv: OPENAI_API_KEY

iterations: 3
sampling: { samples_per_prompt: 5, temperature: 0.7, top_p: 0.95, max_new_tokens: 16 }
pairs:
  rule: win-rate                  # win-rate (large margins on r^), score (the paper's 6-point rule), spin
  pairs_per_prompt: 2
  replay: [0.3, 0.15]             # share of pairs replayed from iterations t-1, t-2
  # positive_sources: [teacher]   # DNO-Restrictive
objective: { name: dno-prct, beta: 0.1 }   # dno-prct, dno, dpo (fixed reference), ipo, sppo, inpo, spin
train: { lr: 1.0e-3, batch_size: 16, epochs: 2 }
eval: { samples_per_prompt: 4, temperature: 1.0 }
`;

const ORACLE = `// A programmatic preference oracle for the example task: reverse the word after "rev ".
// Return P(a beats b | prompt) in [0, 1]. Here: a correct answer (brackets allowed) beats a wrong one,
// two correct answers tie, and so do two wrong ones. dno demo uses a richer, intransitive one.
export function prefer(prompt, a, b) {
  const word = /^rev ([a-z]+)=$/.exec(prompt)?.[1] ?? "";
  const want = [...word].reverse().join("");
  const ok = (s) => s.replace(/^[[({]([a-z]+)[\\])}]$/, "$1") === want;
  return ok(a) === ok(b) ? 0.5 : ok(a) ? 1 : 0;
}
`;

export function register(program: Command): void {
  program
    .command("init")
    .description("write a commented dno.yaml, example prompts and an example oracle into a directory")
    .argument("[dir]", "where to write them", ".")
    .action((dir: string) => {
      const files = ["dno.yaml", "oracle.mjs", "sft.jsonl", "prompts.jsonl", "eval.jsonl"];
      const existing = files.filter((f) => existsSync(join(dir, f)));
      if (existing.length > 0)
        throw new DnoError(`${resolve(dir)}: ${existing.join(", ")} already exist; nothing written`);
      mkdirSync(dir, { recursive: true });
      const words = randomWords(7, 1500, DEFAULT_TASK);
      const rows = (from: number, n: number, name: string) =>
        words.slice(from, from + n).map((w, i) => ({
          id: `${name}-${i}`,
          prompt: promptOf(w),
          gold: teacherAnswer(w, 7, DEFAULT_TASK),
        }));
      writeFileAtomic(join(dir, "dno.yaml"), CONFIG);
      writeFileAtomic(join(dir, "oracle.mjs"), ORACLE);
      writeFileAtomic(join(dir, "sft.jsonl"), toJsonl(rows(0, 1000, "sft")));
      writeFileAtomic(join(dir, "prompts.jsonl"), toJsonl(rows(1000, 400, "p")));
      writeFileAtomic(join(dir, "eval.jsonl"), toJsonl(rows(1400, 100, "eval")));
      process.stdout.write(
        `wrote ${files.join(", ")} in ${resolve(dir)}\nnext: dno run --config ${join(dir, "dno.yaml")}\n`,
      );
    });
}
