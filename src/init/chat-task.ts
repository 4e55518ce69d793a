/**
 * `dno init --task chat`: a chat-style run: an instruction-tuned Hugging Face model (its chat template
 * formats the prompts) judged by an LLM over an OpenAI-compatible server. Both are placeholders to fill
 * in; the prompts are a handful of examples to replace with your own (hundreds per iteration).
 */
import { toJsonl } from "../util/jsonl.js";
import type { InitFiles } from "./tasks.js";

const PROMPTS = [
  "Explain what a hash table is to someone who has never programmed.",
  "Write a short, friendly email declining a meeting invitation.",
  "What are three ways to reduce food waste at home?",
  "Summarise the causes of the seasons on Earth in two sentences.",
  "Give me a recipe for a simple vegetable soup.",
  "How do I convert Celsius to Fahrenheit? Show an example.",
  "Write a haiku about a rainy morning.",
  "What is the difference between weather and climate?",
  "Suggest a name for a bakery and explain the choice.",
  "List the planets of the solar system in order from the Sun.",
  "How should I prepare for a job interview?",
  "Explain recursion with a short Python example.",
];
const EVAL = [
  "Explain why the sky is blue in simple words.",
  "Write a two-line poem about friendship.",
  "What are the benefits of regular exercise?",
  "How does a bicycle stay upright while moving?",
];

function config(modelPath: string): string {
  return `# dno run config: chat-style DNO. Fill in the two placeholders (model.path, the judge's oracle
# settings) and replace prompts.jsonl / eval.jsonl with your prompts (hundreds per iteration).
# Paths are relative to this file. Run: dno run --config dno.yaml
# Every key is in README.md's config reference; dno run writes the full config it used to run/config.yaml.
seed: 1
run_dir: run

model:
  # An instruction-tuned Llama/Qwen2/Mistral directory (config.json, model.safetensors, tokenizer.json
  # with a chat template), e.g. SmolLM2-135M-Instruct or Qwen2.5-0.5B-Instruct downloaded from the Hub.
  path: ${JSON.stringify(modelPath)}

data:
  prompts: prompts.jsonl          # {"id", "prompt"}: no gold answers, so no teacher candidates
  eval: eval.jsonl
  # validation: validation.jsonl  # held-out prompts that choose the best iterate (else: the last)

oracle:
  kind: llm-judge                 # see \`dno judge\`; try it first: dno judge --config ... on a few lines
  mode: pointwise                 # the paper's 6-point rubric, all candidates in one prompt
  baseUrl: http://127.0.0.1:8000/v1   # PLACEHOLDER: e.g. vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000
  model: judge-model-name         # PLACEHOLDER: the judge's model name on that server
  # apiKeyEnv: OPENAI_API_KEY     # the variable holding the key, for servers that need one
  cache: judge-cache.sqlite       # paid judgments are never paid again (reruns, resumes)
  concurrency: 4

iterations: 3
sampling: { samples_per_prompt: 5, temperature: 0.7, top_p: 0.95, max_new_tokens: 256, include_gold: false }
pairs: { rule: score, pairs_per_prompt: 1 }   # the paper's rule: positives score 5-6, margin 2
# A pretrained model moves far per step: start low (the paper: 5e-7 to 5e-5 depending on size) and
# watch the collapse guards; beta 0.1 is the paper's.
objective: { name: dno-prct, beta: 0.1 }
train: { lr: 5.0e-6, batch_size: 8, epochs: 1, warmup_steps: 5, lr_decay: 0.7 }
eval: { samples_per_prompt: 2, temperature: 0.7, top_p: 0.95 }
guards: { stop_on_collapse: true, metrics: [] }
`;
}

export function chatTaskFiles(modelPath: string): InitFiles {
  const rows = (prompts: string[], name: string) =>
    toJsonl(prompts.map((prompt, i) => ({ id: `${name}-${i}`, prompt })));
  return {
    "dno.yaml": config(modelPath),
    "prompts.jsonl": rows(PROMPTS, "p"),
    "eval.jsonl": rows(EVAL, "eval"),
  };
}
