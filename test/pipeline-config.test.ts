import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { engine } from "../src/engine/index.js";
import { loadRunConfig } from "../src/pipeline/config.js";
import { DnoError } from "../src/util/errors.js";
import { runTiny, TINY_CONFIG, tinyRunInputs } from "./tiny-run.js";

const GOOD = `
model: { from_scratch: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2 } }
data: { prompts: p.jsonl, eval: e.jsonl }
oracle: { kind: programmatic, module: o.mjs }
`;

function write(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), "dno-config-"));
  const file = join(dir, "dno.yaml");
  writeFileSync(file, text);
  return file;
}

function rejects(text: string, pattern: RegExp): void {
  const file = write(text);
  assert.throws(
    () => loadRunConfig(file),
    (e: unknown) =>
      e instanceof DnoError &&
      e.message.startsWith(file) &&
      pattern.test(e.message) &&
      !e.message.includes("\n"),
  );
}

test("a minimal config gets the paper's defaults and absolute paths", () => {
  const file = write(GOOD);
  const c = loadRunConfig(file);
  assert.equal(c.objective.name, "dno-prct");
  assert.equal(c.sampling.samples_per_prompt, 5);
  assert.deepEqual(c.pairs.replay, [0.3, 0.15]);
  assert.equal(c.iterations, 3);
  assert.equal(c.data.prompts, join(file, "..", "p.jsonl"));
  assert.equal(c.run_dir, join(file, "..", "run"));
  assert.equal(c.model.recompute, undefined);
  const recompute = GOOD.replace("num_attention_heads: 2 } }", "num_attention_heads: 2 }, recompute: true }");
  assert.equal(loadRunConfig(write(recompute)).model.recompute, true);
});

test("bad configs give one error naming the field path", () => {
  rejects(`${GOOD}\nobjective: { name: ppo }`, /objective\.name/);
  rejects(`${GOOD}\nobjective: { name: inpo, beta: 0.1 }`, /objective\.tau: inpo and nash-md need tau/);
  rejects(`${GOOD}\nsampling: { temperature: -1 }`, /sampling\.temperature/);
  rejects(`${GOOD}\npairs: { replay: [0.3, 2] }`, /pairs\.replay\[1\]/);
  rejects(`${GOOD}\ntrain: { lr: 0.1, momentum: 0.9 }`, /train: .*momentum/);
  rejects(
    GOOD.replace("num_attention_heads: 2 } }", "num_attention_heads: 2 }, recompute: 1 }"),
    /model\.recompute/,
  );
  rejects(
    GOOD.replace("data: { prompts: p.jsonl, eval: e.jsonl }", "data: { prompts: p.jsonl }"),
    /data\.eval/,
  );
  rejects(
    GOOD.replace(/^model: .*$/m, "model: {}"),
    /model: give exactly one of model\.path and model\.from_scratch/,
  );
  rejects(GOOD.replace("kind: programmatic, module: o.mjs", "kind: llm-judge, model: x"), /oracle/);
  rejects("model: [unclosed", /invalid YAML/);
});

test("the neighbours' sections: defaults, and combinations that cannot work are refused", () => {
  const c = loadRunConfig(
    write(`${GOOD}pairs: { reward_augmented: {} }\nobjective: { name: dpo, spo: {} }\n`),
  );
  assert.deepEqual(c.pairs.reward_augmented, { conditioning: "prefix" });
  assert.deepEqual(c.objective.spo, { weight: 0.1, degrees: 3, unit: "rake", samples_per_response: 1 });
  assert.equal(loadRunConfig(write(`${GOOD}search: {}\n`)).search?.children, 3);
  rejects(
    `${GOOD}pairs: { rule: spin, reward_augmented: {} }\n`,
    /pairs\.reward_augmented: .*score or win-rate/,
  );
  rejects(
    `${GOOD}objective: { spo: { degrees: 2, samples_per_response: 3 } }\n`,
    /objective\.spo\.samples_per_response/,
  );
  rejects(`${GOOD}search: {}\npairs: { offline: true }\n`, /search: MCTS builds its own step-level pairs/);
});

test("reward-augmented conditioning: the template must fit it; goal-conditioned SFT needs goals", () => {
  const system = loadRunConfig(write(`${GOOD}pairs: { reward_augmented: { conditioning: system } }\n`));
  assert.deepEqual(system.pairs.reward_augmented, { conditioning: "system" });
  rejects(
    `${GOOD}pairs: { reward_augmented: { conditioning: system, template: "{goal}: {prompt}" } }\n`,
    /: pairs\.reward_augmented\.template: a system template must not contain \{prompt\}: the prompt is the user message$/,
  );
  rejects(
    `${GOOD}pairs: { reward_augmented: { template: "goal first" } }\n`,
    /: pairs\.reward_augmented\.template: the template must contain \{goal\}$/,
  );
  rejects(
    `${GOOD}pairs: { reward_augmented: { template: "<{goal}>" } }\n`,
    /: pairs\.reward_augmented\.template: a prefix template must contain \{prompt\}$/,
  );
  rejects(
    `${GOOD}pairs: { reward_augmented: { conditioning: user } }\n`,
    /pairs\.reward_augmented\.conditioning/,
  );
  rejects(
    `${GOOD}sft: { data: s.jsonl, lr: 0.001, goal_conditioned: true }\n`,
    /: sft\.goal_conditioned: conditions gold answers on the highest goal: needs pairs\.reward_augmented$/,
  );
});

test("`threads` sizes the engine's thread pool in runPipeline (dno run, demo and compare)", async () => {
  const dir = tinyRunInputs(`${TINY_CONFIG}threads: 1\n`);
  const pool = engine().numThreads();
  try {
    engine().setNumThreads(2);
    await runTiny(dir);
    assert.equal(engine().numThreads(), 1);
  } finally {
    engine().setNumThreads(pool);
  }
});
