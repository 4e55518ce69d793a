/**
 * `dno init --task demo`: the built-in demo's task and the settings that make it learn (the demo's, chosen
 * by the sweep in README: tuning), as editable files: a commented dno.yaml, the oracle and task metrics as
 * plain JavaScript, and prompt files with the teacher's answers.
 */
import { DEMO_SPLITS, demoConfig } from "../demo/demo.js";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../demo/task.js";
import { toJsonl } from "../util/jsonl.js";
import type { InitFiles } from "./tasks.js";

/** The demo's run settings, as the template writes them (test: they equal demoConfig's). */
export function demoTemplateSettings() {
  const c = demoConfig();
  return {
    sft: c.sft!,
    sampling: c.sampling!,
    pairs: c.pairs!,
    objective: c.objective!,
    train: c.train!,
    eval: c.eval!,
    arch: c.model!.from_scratch!,
  };
}

/** A YAML flow mapping of plain values (JSON scalars and lists are YAML). */
export const flow = (o: object): string =>
  `{ ${Object.entries(o)
    .map(([k, v]) => `${k}: ${JSON.stringify(v)}`)
    .join(", ")} }`;

function config(seed: number): string {
  const s = demoTemplateSettings();
  return `# dno run config: the built-in demo's task (reverse a word; brackets beat plain, and the three
# brackets beat each other in a cycle), with the settings that make it learn on 2 CPU cores in a few
# minutes. Paths are relative to this file. Run: dno run --config dno.yaml
# Every key is in README.md's config reference; dno run writes the full config it used to run/config.yaml.
seed: ${seed}
run_dir: run

model:
  # A tiny Llama trained from scratch with the built-in byte-level tokenizer. For your own
  # Hugging Face model directory (Llama, Qwen2, Mistral): \`path: ./my-model\` instead (see dno init --task hf).
  from_scratch: ${flow(s.arch)}

# SFT on the teacher's answers first: DNO improves a policy that already answers; from a policy that
# writes bytes, every pair is teacher-over-student and nothing is learned (a collapse guard says so).
sft: ${flow({ ...s.sft, data: "sft.jsonl" })}

data:
  prompts: prompts.jsonl          # split into \`iterations\` non-overlapping partitions
  eval: eval.jsonl                # held-out: evaluated after every iteration
  validation: validation.jsonl    # held-out: chooses the best iterate (without it the result is the last)
  prompts_per_iteration: ${DEMO_SPLITS.dno / 3}

oracle:                           # where the preferences come from (see \`dno judge\`)
  kind: programmatic
  module: oracle.mjs              # exports prefer(prompt, a, b) -> P(a beats b) in [0, 1]
task_metrics: metrics.mjs         # accuracy after every iteration (a collapse guard watches it)

iterations: 3
# Temperature 1: r_t is a win rate against pi_t itself, and every style stays explored.
sampling: ${flow(s.sampling)}
pairs: ${flow(s.pairs)}
# beta and the learning rate: the sweep in README (tuning) chose these; lr_decay lowers the learning
# rate each iteration, as the paper does.
objective: ${flow(s.objective)}
train: ${flow(s.train)}
eval: ${flow(s.eval)}
guards: { stop_on_collapse: false }   # true: stop at the first collapse and keep the last good iterate
`;
}

/** The demo's preference (src/demo/task.ts, demoPreference) as a standalone module to edit. */
const ORACLE = `// The demo's preference oracle: P(a beats b | prompt) for "rev <word>=" prompts.
// A correct answer (the word reversed, plain or in brackets) beats a wrong one; two wrong answers tie.
// Between two correct answers every bracket beats plain (0.9), and the brackets form a cycle:
// round beats square, curly beats round, square beats curly (0.6). No style is best.
const STYLES = ["plain", "square", "round", "curly"];
const BRACKETS = { plain: ["", ""], square: ["[", "]"], round: ["(", ")"], curly: ["{", "}"] };
const BEATS_PLAIN = ${DEFAULT_TASK.beatsPlain};
const CYCLE_WIN = ${DEFAULT_TASK.cycleWin};
const p = BEATS_PLAIN;
const w = CYCLE_WIN;
const GAME = [
  [0.5, 1 - p, 1 - p, 1 - p],
  [p, 0.5, 1 - w, w],
  [p, w, 0.5, 1 - w],
  [p, 1 - w, w, 0.5],
];

/** The style of a correct answer to the prompt, or -1. */
export function correctStyle(prompt, answer) {
  const word = /^rev ([a-z]+)=$/.exec(prompt)?.[1];
  if (word === undefined) return -1;
  const want = [...word].reverse().join("");
  return STYLES.findIndex((s) => {
    const [open, close] = BRACKETS[s];
    return answer === open + want + close;
  });
}

export function prefer(prompt, a, b) {
  const sa = correctStyle(prompt, a);
  const sb = correctStyle(prompt, b);
  if (sa < 0 || sb < 0) return sa === sb ? 0.5 : sa < 0 ? 0 : 1;
  return GAME[sa][sb];
}
`;

const METRICS = `// Task metrics (config task_metrics), computed on the held-out prompts after every iteration:
// items are { prompt, gold, samples }; logprobs(items of { prompt, response }) gives exact log-probs.
import { correctStyle } from "./oracle.mjs";

export function metrics(items) {
  const samples = items.flatMap((item) => item.samples.map((s) => correctStyle(item.prompt, s)));
  const correct = samples.filter((s) => s >= 0);
  return {
    accuracy: correct.length / samples.length,
    bracketed: correct.length === 0 ? 0 : correct.filter((s) => s > 0).length / correct.length,
  };
}
`;

/** The seed draws the words and the teacher's answers (a task instance) and seeds the run. */
export function demoTaskFiles(seed = 1): InitFiles {
  const { sft, dno, validation, eval: evalCount } = DEMO_SPLITS;
  const words = randomWords(seed, sft + dno + validation + evalCount, DEFAULT_TASK);
  const rows = (from: number, count: number, name: string) =>
    toJsonl(
      words.slice(from, from + count).map((w, i) => ({
        id: `${name}-${i}`,
        prompt: promptOf(w),
        gold: teacherAnswer(w, seed, DEFAULT_TASK),
      })),
    );
  return {
    "dno.yaml": config(seed),
    "oracle.mjs": ORACLE,
    "metrics.mjs": METRICS,
    "sft.jsonl": rows(0, sft, "sft"),
    "prompts.jsonl": rows(sft, dno, "p"),
    "validation.jsonl": rows(sft + dno, validation, "val"),
    "eval.jsonl": rows(sft + dno + validation, evalCount, "eval"),
  };
}
