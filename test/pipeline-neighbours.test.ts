import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { writeRunReport } from "../src/cli/commands/report.js";
import { softmax } from "../src/core/prob.js";
import { demoModule } from "../src/demo/demo.js";
import { offlinePreferences } from "../src/demo/offline.js";
import { DEMO_JUDGE_TEMPLATE, DEMO_SELF_SCORES } from "../src/demo/self-data.js";
import { DEFAULT_TASK, promptOf, randomWords, teacherAnswer } from "../src/demo/task.js";
import { parseRunConfig } from "../src/pipeline/config.js";
import { mixtureIterates } from "../src/pipeline/paths.js";
import { loadPolicy, sequenceLogprobs } from "../src/pipeline/policy.js";
import { openTrainOracle } from "../src/pipeline/policy-oracles.js";
import { runPipeline } from "../src/pipeline/run.js";
import { DnoError } from "../src/util/errors.js";
import { toJsonl } from "../src/util/jsonl.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));

/** The demo's preference, logging every question it is really asked (one line per paid judgment). */
const ORACLE = `import { appendFileSync } from "node:fs";
import { prefer as demo } from ${JSON.stringify(new URL("../src/demo/oracle.js", import.meta.url).href)};
export function prefer(prompt, a, b) {
  appendFileSync(new URL("./calls.log", import.meta.url), JSON.stringify([prompt, a, b]) + "\\n");
  return demo(prompt, a, b);
}
`;

function setup(): string {
  const dir = mkdtempSync(join(tmpdir(), "dno-neighbours-"));
  const words = randomWords(13, 90, DEFAULT_TASK);
  const rows = (from: number, n: number, name: string) =>
    words
      .slice(from, from + n)
      .map((w, i) => ({ id: `${name}${i}`, prompt: promptOf(w), gold: teacherAnswer(w, 13, DEFAULT_TASK) }));
  writeFileSync(join(dir, "sft.jsonl"), toJsonl(rows(0, 40, "s")));
  writeFileSync(join(dir, "prompts.jsonl"), toJsonl(rows(40, 24, "p")));
  writeFileSync(join(dir, "eval.jsonl"), toJsonl(rows(70, 8, "e")));
  writeFileSync(join(dir, "prefs.jsonl"), toJsonl(offlinePreferences(words.slice(0, 30), 13, DEFAULT_TASK)));
  writeFileSync(join(dir, "oracle.mjs"), ORACLE);
  return dir;
}

const base = {
  seed: 3,
  run_dir: "run",
  model: {
    from_scratch: {
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 32,
    },
  },
  sft: { data: "sft.jsonl", lr: 0.01, batch_size: 8, epochs: 1 },
  data: { prompts: "prompts.jsonl", eval: "eval.jsonl" },
  oracle: { kind: "programmatic", module: "oracle.mjs" },
  task_metrics: demoModule("metrics.js"),
  iterations: 2,
  sampling: { samples_per_prompt: 3, max_new_tokens: 8 },
  pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 },
  train: { lr: 0.001, batch_size: 4 },
  eval: { samples_per_prompt: 2, mixture: true },
};

const callLines = (dir: string) =>
  existsSync(join(dir, "calls.log"))
    ? readFileSync(join(dir, "calls.log"), "utf8").split("\n").length - 1
    : 0;

const jsonl = (file: string) =>
  readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Record<string, unknown>);

async function runTwice(dir: string, config: Record<string, unknown>) {
  const parsed = parseRunConfig(config, join(dir, "dno.yaml"));
  const first = await runPipeline({ config: parsed });
  const calls = callLines(dir);
  const again = await runPipeline({ config: parsed });
  assert.equal(again.finalWeightsSha256, first.finalWeightsSha256);
  assert.equal(callLines(dir), calls, "a rerun pays for nothing twice");
  return first;
}

test("SELM with an ensemble's labels, and the mixture of iterates, in a tiny run", async () => {
  const dir = setup();
  const result = await runTwice(dir, {
    ...base,
    objective: { name: "selm", beta: 0.1, alpha: 0.5 },
    train_oracle: {
      kind: "ensemble",
      aggregate: "mean",
      members: [
        { kind: "programmatic", module: "oracle.mjs" },
        { kind: "programmatic", module: demoModule("length-biased-oracle.js") },
      ],
    },
  });
  const run = join(dir, "run");
  const pairs = jsonl(join(run, "iterations/1/pairs.jsonl"));
  assert.ok(pairs.every((p) => typeof p.exploreText === "string"));
  const trl = jsonl(join(run, "iterations/1/pairs.trl.jsonl"));
  assert.ok(trl.every((r) => (r.ref_explore_logps as number) < 0));
  // Algorithm 1's output: the mixture of pi_1 and pi_2 (pi_3 is the last iterate).
  assert.deepEqual(
    mixtureIterates(run).map((d) => d.slice(run.length + 1)),
    ["checkpoints/pi_1", "checkpoints/pi_2"],
  );
  const m = result.mixture!;
  assert.equal(m.iterates, 2);
  for (const w of [m.winrate_vs_prev, m.winrate_vs_initial, m.winrate_vs_teacher])
    assert.ok(w! >= 0 && w! <= 1);
  assert.ok(m.metrics.exploitability! >= 0);
  assert.equal(jsonl(join(run, "iterations/mixture/eval.jsonl")).length, 8);
  assert.match(readFileSync(await writeRunReport(run), "utf8"), /mixture of pi_1\.\.pi_2/);

  // dno generate --mixture: each response from a uniformly drawn iterate, the same for the same seed.
  const generate = (out: string) =>
    spawnSync(
      process.execPath,
      [BIN, "generate", "--mixture", run, "--input", "eval.jsonl", "--output", out, "-k", "4", "--seed", "9"],
      { cwd: dir, encoding: "utf8" },
    );
  for (const out of ["a.jsonl", "b.jsonl"]) assert.equal(generate(out).status, 0);
  assert.equal(readFileSync(join(dir, "a.jsonl"), "utf8"), readFileSync(join(dir, "b.jsonl"), "utf8"));
  const iterates = jsonl(join(dir, "a.jsonl")).flatMap((r) =>
    (r.responses as { iterate: number }[]).map((x) => x.iterate),
  );
  assert.deepEqual([...new Set(iterates)].sort(), [1, 2]);
  // dno eval --mixture against pi_1, judged by the demo's oracle.
  writeFileSync(join(dir, "judge.yaml"), "kind: programmatic\nmodule: oracle.mjs\n");
  const evaluated = spawnSync(
    process.execPath,
    [
      BIN,
      "eval",
      "--mixture",
      run,
      "--baseline-model",
      join(run, "checkpoints/pi_1"),
      "--prompts",
      "eval.jsonl",
    ].concat(["--oracle", "judge.yaml", "--json", "--lc-bootstrap", "0", "--bootstrap", "10"]),
    { cwd: dir, encoding: "utf8" },
  );
  assert.equal(evaluated.status, 0, evaluated.stderr);
  assert.ok(JSON.parse(evaluated.stdout).n_total === 8, evaluated.stdout);
});

test("DICE: round 1 on the offline file, then the implicit reward with offline replay; Nash-MD", async () => {
  const dir = setup();
  const config = {
    ...base,
    eval: { samples_per_prompt: 2 },
    sampling: { samples_per_prompt: 3, max_new_tokens: 8, include_gold: false },
    objective: { name: "nash-md", beta: 0.2, tau: 0.05 },
    train_oracle: { kind: "implicit-reward", beta: 0.2, length_penalty: 0.01 },
    pairs: { pairs_per_prompt: 1, replay: [], offline_data: { file: "prefs.jsonl", fraction: 0.5 } },
  };
  const result = await runTwice(dir, config);
  assert.equal(result.mixture, null);
  const run = join(dir, "run");
  assert.ok(!existsSync(join(run, "iterations/1/samples.jsonl")), "round 1 samples nothing");
  const round1 = jsonl(join(run, "iterations/1/pairs.jsonl"));
  const offline = jsonl(join(dir, "prefs.jsonl")).length;
  assert.equal(round1.length, offline);
  assert.ok(round1.every((p) => p.rule === "offline"));
  const round2 = jsonl(join(run, "iterations/2/pairs.jsonl"));
  const fresh = round2.filter((p) => p.replayedFrom === undefined).length;
  assert.ok(fresh > 0);
  assert.equal(round2.filter((p) => p.rule === "offline").length, Math.min(offline, fresh));
  // Nash-MD scores pairs under pi_t and under pi_1 (the anchor of the geometric mixture).
  assert.ok(
    jsonl(join(run, "iterations/2/pairs.trl.jsonl")).every((r) => typeof r.anchor_chosen_logps === "number"),
  );

  // The implicit-reward judgments are in the run's cache: asking again pays nothing and agrees.
  const annotation = jsonl(join(run, "iterations/2/annotations.jsonl"))[0]! as {
    prompt: string;
    candidates: { text: string; score: number }[];
  };
  const parsed = parseRunConfig(config, join(dir, "dno.yaml"));
  const oracle = await openTrainOracle(parsed.train_oracle!, run, 2);
  const texts = annotation.candidates.map((c) => c.text);
  assert.deepEqual(
    await oracle.score(annotation.prompt, texts),
    annotation.candidates.map((c) => c.score),
  );
  assert.equal(oracle.calls(), 0);
  oracle.close();
  // They are the reward of pi_2 against its reference pi_1: beta (log pi_2 - log pi_1) - 0.01 |y|.
  const items = texts.map((response) => ({ prompt: annotation.prompt, response }));
  const [now, before] = [2, 1].map((k) =>
    sequenceLogprobs(loadPolicy(join(run, `checkpoints/pi_${k}`)), items),
  );
  annotation.candidates.forEach((c, i) => {
    const expected = 0.2 * (now![i]! - before![i]!) - 0.01 * [...c.text].length;
    assert.ok(Math.abs(c.score - expected) < 1e-9, `${c.score} vs ${expected}`);
  });

  assert.throws(
    () => parseRunConfig({ ...config, pairs: { pairs_per_prompt: 1 } }, "x.yaml"),
    (e: unknown) =>
      e instanceof DnoError &&
      /x\.yaml: train_oracle\.kind implicit-reward needs pairs\.offline_data/.test(e.message),
  );
});

test("self-rewarding: pi_t scores its own samples; a rerun and a reopened judge pay nothing twice", async () => {
  const dir = setup();
  writeFileSync(join(dir, "judge.jinja"), DEMO_JUDGE_TEMPLATE);
  const config = {
    ...base,
    iterations: 1,
    eval: { samples_per_prompt: 1 },
    train_oracle: { kind: "self", template: "judge.jinja", readout: "expected", ...DEMO_SELF_SCORES },
  };
  await runTwice(dir, config);
  const run = join(dir, "run");
  const annotation = jsonl(join(run, "iterations/1/annotations.jsonl"))[0]! as {
    prompt: string;
    candidates: { text: string; score: number }[];
  };
  assert.ok(annotation.candidates.every((c) => c.score >= 0 && c.score <= 2));
  const parsed = parseRunConfig(config, join(dir, "dno.yaml"));
  const judge = await openTrainOracle(parsed.train_oracle!, run, 1);
  const texts = annotation.candidates.map((c) => c.text);
  assert.deepEqual(
    await judge.score(annotation.prompt, texts),
    annotation.candidates.map((c) => c.score),
  );
  assert.equal(judge.calls(), 0);
  judge.close();
  // Read as a greedy answer in our JSON format, this tiny model's judgments fail: null, never a label.
  const greedy = await openTrainOracle(
    parseRunConfig(
      { ...config, train_oracle: { ...config.train_oracle, readout: "generate", max_new_tokens: 4 } },
      join(dir, "g.yaml"),
    ).train_oracle!,
    run,
    1,
  );
  assert.deepEqual(await greedy.score(annotation.prompt, texts.slice(0, 2)), [null, null]);
  assert.equal(greedy.calls(), 1);
  greedy.close();
  // The score is pi_1's expected rubric score: sum_s s * pi_1(s | judge prompt), normalised over 0..2.
  const policy = loadPolicy(join(run, "checkpoints/pi_1"));
  const judgePrompt = `judge ${annotation.prompt} ${texts[0]}`;
  const lp = sequenceLogprobs(
    policy,
    ["0", "1", "2"].map((response) => ({ prompt: judgePrompt, response })),
  );
  const p = softmax(lp);
  assert.ok(Math.abs(annotation.candidates[0]!.score - (p[1]! + 2 * p[2]!)) < 1e-9);
});

test("only-prompting: y_l is pi_t's answer under the iteration's worse-answer prefix; no judgment", async () => {
  const dir = setup();
  const config = {
    ...base,
    eval: { samples_per_prompt: 1 },
    pairs: { rule: "prompted", pairs_per_prompt: 2, negative_prefixes: ["worse3 ", "worse1 "] },
  };
  const callsBefore = callLines(dir);
  await runTwice(dir, config);
  const run = join(dir, "run");
  const samples = jsonl(join(run, "iterations/2/samples.jsonl"));
  assert.ok(samples.every((r) => (r.negatives as unknown[]).length === 3));
  const pairs = jsonl(join(run, "iterations/1/pairs.jsonl")).filter((p) => p.replayedFrom === undefined);
  assert.ok(pairs.length > 0);
  assert.ok(pairs.every((p) => p.rule === "prompted" && /^n\d$/.test(p.rejected as string)));
  // Only the evaluation asked the oracle: every question it was asked is about an eval prompt.
  const evalPrompts = new Set(jsonl(join(dir, "eval.jsonl")).map((r) => r.prompt));
  const asked = readFileSync(join(dir, "calls.log"), "utf8").trim().split("\n").slice(callsBefore);
  assert.ok(asked.length > 0);
  assert.ok(asked.every((line) => evalPrompts.has((JSON.parse(line) as string[])[0])));
  assert.throws(
    () => parseRunConfig({ ...config, pairs: { rule: "prompted" } }, "y.yaml"),
    /y\.yaml: pairs\.rule prompted needs pairs\.negative_prefixes/,
  );
});
