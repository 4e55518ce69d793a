import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { chainPrompt, chainTeacher, DEFAULT_CHAIN, isCorrect, randomChains } from "../src/demo/chain.js";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../src/demo/task.js";
import { loadPolicy, sequenceLogprobs } from "../src/pipeline/policy.js";
import { toJsonl } from "../src/util/jsonl.js";

const EOS = 257; // the byte-level tokenizer's <eos>
const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const module = (f: string) => fileURLToPath(new URL(`../src/demo/${f}`, import.meta.url));

const TINY = `model: { from_scratch: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 48 } }
data: { prompts: prompts.jsonl, eval: eval.jsonl }
iterations: 2
train: { lr: 0.001, batch_size: 4 }
eval: { samples_per_prompt: 2 }
`;

function setup(rows: { prompt: string; gold: string }[], config: string): string {
  const dir = mkdtempSync(join(tmpdir(), "dno-neighbours-"));
  const split = (from: number, n: number, name: string) =>
    toJsonl(rows.slice(from, from + n).map((r, i) => ({ id: `${name}${i}`, ...r })));
  writeFileSync(join(dir, "sft.jsonl"), split(0, 40, "s"));
  writeFileSync(join(dir, "prompts.jsonl"), split(40, 16, "p"));
  writeFileSync(join(dir, "eval.jsonl"), split(56, 6, "e"));
  writeFileSync(join(dir, "dno.yaml"), TINY + config);
  return dir;
}

const chainRows = () =>
  randomChains(3, 62, DEFAULT_CHAIN).map((c) => ({
    prompt: chainPrompt(c),
    gold: chainTeacher(c, 3, DEFAULT_CHAIN),
  }));

const SEARCH = `seed: 4
run_dir: run
oracle: { kind: programmatic, module: ${JSON.stringify(module("chain-oracle.js"))} }
task_metrics: ${JSON.stringify(module("chain-metrics.js"))}
sampling: { max_new_tokens: 24 }
search: { children: 3, simulations: 2, first_step_factor: 2, max_step_tokens: 8, self_eval: { weight: 0.5 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 30 }
objective: { name: dno-prct, beta: 0.3 }
`;

function dno(dir: string, ...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { cwd: dir, encoding: "utf8" });
}
const hashOf = (stdout: string) => /final weights sha256 ([0-9a-f]{64})/.exec(stdout)?.[1];
const readRows = (file: string) =>
  readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

let searched: { dir: string; hash: string } | undefined;
function searchRun() {
  if (!searched) {
    const dir = setup(chainRows(), SEARCH);
    const r = dno(dir, "run", "--config", "dno.yaml");
    assert.equal(r.status, 0, r.stderr);
    searched = { dir, hash: hashOf(r.stdout)! };
  }
  return searched;
}

test("an MCTS run trains on step-level pairs that share their prefix", () => {
  const { dir } = searchRun();
  const pairs = readRows(join(dir, "run/iterations/1/pairs.jsonl"));
  assert.ok(pairs.length > 0, "the search found pairs");
  for (const p of pairs) {
    assert.equal(p.rule, "mcts");
    assert.match(p.prompt as string, /^chain \d([+-]\d)+=([^;]*;)*$/);
    assert.notEqual(p.chosenText, p.rejectedText);
    for (const side of ["chosen", "rejected"]) {
      const text = p[`${side}Text`] as string;
      const ids = p[`${side}Ids`] as number[];
      // the ids as sampled: the step's bytes, and EOS only after a step that ended the response
      const bytes = ids.at(-1) === EOS ? ids.slice(0, -1) : ids;
      assert.equal(Buffer.from(bytes).toString("utf8"), text);
      if (text.endsWith(";")) assert.notEqual(ids.at(-1), EOS);
    }
    assert.ok((p.margin as number) > 0);
  }
  // A committed final step's value: the outcome (+1 / -1) plus 0.5 P(y) / (P(y) + P(n)) under pi_1.
  const traces = readRows(join(dir, "run/iterations/1/search.jsonl"));
  const prompts = new Map(readRows(join(dir, "prompts.jsonl")).map((r) => [r.id, r.prompt as string]));
  const policy = loadPolicy(join(dir, "run/checkpoints/pi_1"));
  assert.equal(traces.length, 8, "16 prompts in 2 partitions");
  for (const t of traces) {
    assert.ok((t.nodes as number) > 1);
    const prompt = prompts.get(t.id as string)!;
    const response = t.response as string;
    const question = `${prompt}${response}\nright?`;
    const [y, n] = sequenceLogprobs(policy, [
      { prompt: question, response: "y" },
      { prompt: question, response: "n" },
    ]);
    const selfEval = 1 / (1 + Math.exp(n! - y!));
    // A final step (even an empty one, right after a delimiter) is judged; a depth-limited one is not.
    const outcome = t.outcome as number | null;
    if (!response.endsWith(";")) assert.notEqual(outcome, null, response);
    if (outcome !== null) assert.equal(outcome, isCorrect(prompt, response) ? 1 : -1, response);
    assert.ok(
      Math.abs((t.value as number) - ((outcome ?? 0) + 0.5 * selfEval)) < 1e-9,
      `${t.value} for ${response}`,
    );
  }
});

/** Starts `dno run` and SIGKILLs it once `stage` has finished and `delayMs` more have passed. */
function killAfter(dir: string, stage: string, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child: ChildProcess = spawn(process.execPath, [BIN, "run", "--config", "dno.yaml"], { cwd: dir });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes(`  ${stage}: `)) setTimeout(() => child.kill("SIGKILL"), delayMs);
    });
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL" || code === 0) resolve();
      else reject(new Error(`dno run exited ${code}: ${err}`));
    });
  });
}

test("a resumed MCTS run ends with the same weights as an uninterrupted one", async () => {
  const reference = searchRun();
  const dir = setup(chainRows(), SEARCH);
  for (const [stage, delay] of [
    ["sft", 0],
    ["1/search", 0],
    ["1/train", 5],
  ] as const) {
    await killAfter(dir, stage, delay);
  }
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 0, r.stderr);
  assert.equal(hashOf(r.stdout), reference.hash);
  assert.deepEqual(
    readRows(join(dir, "run/iterations/2/pairs.jsonl")),
    readRows(join(reference.dir, "run/iterations/2/pairs.jsonl")),
  );
});

test("reward-augmented pairs carry their goal in the prompt; SPO trains beside them; both repeat exactly", () => {
  const words = randomWords(5, 62, DEFAULT_TASK);
  const rows = words.map((w) => ({ prompt: promptOf(w), gold: teacherAnswer(w, 5, DEFAULT_TASK) }));
  const config = `seed: 2
run_dir: run
oracle: { kind: programmatic, module: ${JSON.stringify(module("oracle.js"))} }
sampling: { samples_per_prompt: 3, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3, reward_augmented: {} }
objective: { name: dpo, beta: 0.1, spo: { unit: letters, weight: 0.5 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 1 }
`;
  const runs = [setup(rows, config), setup(rows, config)].map((dir) => {
    const r = dno(dir, "run", "--config", "dno.yaml");
    assert.equal(r.status, 0, r.stderr);
    return { dir, hash: hashOf(r.stdout) };
  });
  assert.equal(runs[0]!.hash, runs[1]!.hash);
  const pairs = readRows(join(runs[0]!.dir, "run/iterations/1/pairs.jsonl"));
  assert.ok(pairs.length > 0);
  for (const p of pairs) {
    const goal = p.goal as number;
    assert.equal(p.prompt, `<goal ${goal.toFixed(1)}> ${/rev [a-z]+=$/.exec(p.prompt as string)![0]}`);
  }
  // both copies of a relabelled pair: the same two responses, swapped, each under its own goal
  const swapped = pairs.filter((p) =>
    pairs.some((q) => q.chosenText === p.rejectedText && q.rejectedText === p.chosenText),
  );
  assert.ok(swapped.length > 0);

  const bad = setup(
    rows,
    config.replace("reward_augmented: {}", 'reward_augmented: { template: "goal first" }'),
  );
  const r = dno(bad, "run", "--config", "dno.yaml");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /dno\.yaml: pairs\.reward_augmented\.template: the template must contain \{goal\}/);
});

test("system conditioning: pairs carry the goal as a system message; SFT also learns the highest goal", () => {
  const words = randomWords(5, 62, DEFAULT_TASK);
  const rows = words.map((w) => ({ prompt: promptOf(w), gold: teacherAnswer(w, 5, DEFAULT_TASK) }));
  const dir = setup(
    rows,
    `seed: 2
run_dir: run
oracle: { kind: programmatic, module: ${JSON.stringify(module("oracle.js"))} }
sampling: { samples_per_prompt: 3, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3, reward_augmented: { conditioning: system, template: "q{goal}" } }
objective: { name: dpo, beta: 0.1 }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 1, goal_conditioned: true }
`,
  );
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 0, r.stderr);
  // 40 gold answers, plain and under the highest goal: 80 examples, 10 steps of 8.
  assert.equal(readRows(join(dir, "run/iterations/sft-log.jsonl")).length, 10);
  const pairs = readRows(join(dir, "run/iterations/1/pairs.jsonl"));
  const trl = readRows(join(dir, "run/iterations/1/pairs.trl.jsonl"));
  assert.ok(pairs.length > 0);
  pairs.forEach((p, i) => {
    assert.match(p.prompt as string, /^rev [a-z]+=$/);
    assert.equal(p.system, `q${(p.goal as number).toFixed(1)}`);
    // no chat template: the system message and the prompt joined by a newline, after BOS
    assert.deepEqual(p.promptIds, [256, ...Buffer.from(`${p.system}\n${p.prompt}`)]);
    assert.equal(trl[i]!.system, p.system);
    assert.deepEqual(trl[i]!.prompt_ids, p.promptIds);
  });
});
