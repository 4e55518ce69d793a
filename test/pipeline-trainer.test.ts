import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../src/model/config.js";
import { CausalLM } from "../src/model/model.js";
import { byteTokenizer, saveTokenizer } from "../src/model/tokenizer.js";
import { loadPolicy, tokenSequenceLogprobs } from "../src/pipeline/policy.js";
import { BIN, dno, endsWithin, killRunWhen, setupRun } from "./run-fixture.js";

const config = (trainer = "") => `seed: 3
run_dir: run
model: { from_scratch: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 1 }
data: { prompts: prompts.jsonl, eval: eval.jsonl, prompts_per_iteration: 8 }
oracle: { kind: programmatic, module: oracle.mjs }
iterations: 2
sampling: { samples_per_prompt: 3, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 }
train: { lr: 0.003, batch_size: 4, epochs: 2 }
eval: { samples_per_prompt: 1 }
${trainer}`;

const dnoTrain = `node ${JSON.stringify(BIN).slice(1, -1)} train --model {policy} --pairs {pairs} --out {out} --args {args}`;
const commandTrainer = (command: string) =>
  `trainer: { kind: command, command: ${JSON.stringify(command)} }\n`;

const finalHash = (stdout: string) => /final weights sha256 ([0-9a-f]{64})/.exec(stdout)?.[1];

let engineRun: { dir: string; hash: string } | undefined;
function inProcess() {
  if (!engineRun) {
    const dir = setupRun(config(), "dno-trainer-");
    const r = dno(dir, "run", "--config", "dno.yaml");
    assert.equal(r.status, 0, r.stderr);
    engineRun = { dir, hash: finalHash(r.stdout)! };
  }
  return engineRun;
}

test("pairs.trl.jsonl carries the sampled ids and reference log-probs on exactly those ids", () => {
  const { dir } = inProcess();
  const run = join(dir, "run");
  const rows = (f: string) =>
    readFileSync(join(run, f), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
  const trl = rows("iterations/1/pairs.trl.jsonl");
  const samples = new Map(rows("iterations/1/samples.jsonl").map((r) => [r.prompt, r]));
  const pairs = rows("iterations/1/pairs.jsonl");
  const policy = loadPolicy(join(run, "checkpoints/pi_1"));
  const eos = policy.tokenizer.eosTokenIds[0]!;
  let students = 0;
  trl.forEach((r, i) => {
    const pair = pairs[i];
    for (const [id, ids] of [
      [pair.chosen, r.chosen_ids],
      [pair.rejected, r.rejected_ids],
    ] as const) {
      if (id === "gold") continue;
      const s = samples.get(r.prompt).samples[Number(id.slice(1))];
      assert.deepEqual(ids, s.finished ? [...s.tokens, eos] : s.tokens, "the sampled ids, EOS when drawn");
      students++;
    }
  });
  assert.ok(students > 0, "some pairs hold pi_1's own samples");
  const lp = tokenSequenceLogprobs(policy, [
    ...trl.map((r) => ({ prompt: r.prompt_ids, response: r.chosen_ids })),
    ...trl.map((r) => ({ prompt: r.prompt_ids, response: r.rejected_ids })),
  ]);
  trl.forEach((r, i) => {
    assert.equal(r.ref_chosen_logps, lp[i]);
    assert.equal(r.ref_rejected_logps, lp[trl.length + i]);
  });
  const args = JSON.parse(readFileSync(join(run, "iterations/1/train-args.json"), "utf8"));
  assert.equal(args.objective, "dno-prct");
  assert.equal(args.lr, 0.003);
});

test("a run whose trainer command is `dno train` ends with the in-process trainer's weights", () => {
  const ref = inProcess();
  // The command fails once (a crash mid-training): the stage reruns from its start on the next `dno run`.
  const flaky = `if [ ! -f crashed ]; then touch crashed; echo boom >&2; exit 3; fi; ${dnoTrain}`;
  const dir = setupRun(config(commandTrainer(flaky)), "dno-trainer-");
  const first = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(first.status, 1);
  assert.match(first.stderr, /dno: error: trainer command exited with status 3: .*train-output\.log/);
  assert.match(readFileSync(join(dir, "run/iterations/1/train-output.log"), "utf8"), /boom/);
  assert.ok(!existsSync(join(dir, "run/checkpoints/pi_2")), "no checkpoint from a failed command");
  const second = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(second.status, 0, second.stderr);
  assert.equal(finalHash(second.stdout), ref.hash);
});

test("model.recompute reaches SFT and, through train-args.json, `dno train`: the same weights as without", () => {
  const ref = inProcess();
  const text = config(commandTrainer(dnoTrain)).replace(
    "max_position_embeddings: 32 } }",
    "max_position_embeddings: 32 }, recompute: true }",
  );
  const dir = setupRun(text, "dno-trainer-");
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 0, r.stderr);
  assert.equal(
    JSON.parse(readFileSync(join(dir, "run/iterations/1/train-args.json"), "utf8")).recompute,
    true,
  );
  assert.equal(finalHash(r.stdout), ref.hash);
});

test("a trainer command that leaves no checkpoint fails the stage with one clear error", () => {
  const dir = setupRun(config(commandTrainer("echo nothing > {out}/notes.txt")), "dno-trainer-");
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 1);
  assert.match(r.stderr, /dno: error: trainer command left no checkpoint in .*found: notes\.txt/);
  assert.equal(r.stderr.match(/dno: error:/g)?.length, 1);
});

test("kill -9 of the run mid-training: the trainer command dies with it", async () => {
  // The command's own pid ($$, kept by exec) is the process group's leader: the trainer.
  const dir = setupRun(config(commandTrainer("echo $$ > trainer.pid; exec sleep 600")), "dno-trainer-");
  const pidFile = join(dir, "trainer.pid");
  await killRunWhen(
    dir,
    process.env,
    () => existsSync(pidFile) && readFileSync(pidFile, "utf8").endsWith("\n"),
  );
  const trainer = Number(readFileSync(pidFile, "utf8"));
  assert.ok(await endsWithin(trainer, 20_000), "the trainer outlived the killed run");
});

test("dno train on a plain TRL file tokenises it and computes the reference log-probs as a run does", () => {
  const { dir } = inProcess();
  const run = join(dir, "run");
  const model = join(run, "checkpoints/pi_1");
  const policy = loadPolicy(model);
  // Gold answers as chosen, the next prompt's gold as rejected: complete responses, so their text
  // re-tokenises (byte tokenizer) to the run's ids plus EOS.
  const lines = (f: string) =>
    readFileSync(join(run, f), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
  const pairs = lines("iterations/1/pairs.jsonl");
  const gold = lines("iterations/1/pairs.trl.jsonl").filter((_, i) => pairs[i].chosen === "gold");
  assert.ok(gold.length >= 2);
  const rows = gold.map((r, i) => {
    const other = gold[(i + 1) % gold.length];
    return {
      prompt: r.prompt,
      chosen: r.chosen,
      rejected: other.chosen,
      prompt_ids: r.prompt_ids,
      chosen_ids: r.chosen_ids,
      rejected_ids: other.chosen_ids,
    };
  });
  const lp = tokenSequenceLogprobs(policy, [
    ...rows.map((r) => ({ prompt: r.prompt_ids, response: r.chosen_ids })),
    ...rows.map((r) => ({ prompt: r.prompt_ids, response: r.rejected_ids })),
  ]);
  const full = rows.map((r, i) => ({
    ...r,
    ref_chosen_logps: lp[i]!,
    ref_rejected_logps: lp[rows.length + i]!,
  }));
  const write = (name: string, xs: object[]) =>
    writeFileSync(join(dir, name), xs.map((r) => `${JSON.stringify(r)}\n`).join(""));
  write("full.jsonl", full);
  write(
    "plain.jsonl",
    rows.map(({ prompt, chosen, rejected }) => ({ prompt, chosen, rejected })),
  );
  const train = (pairs: string, out: string, ...flags: string[]) =>
    dno(
      dir,
      "train",
      ...flags,
      "--model",
      model,
      "--pairs",
      pairs,
      "--out",
      out,
      "--objective",
      "dpo",
      "--lr",
      "0.01",
      "--batch-size",
      "2",
    );
  const hash = (r: { stderr: string }) => /weights sha256 ([0-9a-f]{64})/.exec(r.stderr)?.[1];
  const a = train("full.jsonl", "a");
  assert.equal(a.status, 0, a.stderr);
  const b = train("plain.jsonl", "b");
  assert.equal(b.status, 0, b.stderr);
  assert.ok(hash(a));
  assert.equal(hash(b), hash(a));
  const recomputed = train("full.jsonl", "r", "--recompute");
  assert.equal(recomputed.status, 0, recomputed.stderr);
  assert.equal(hash(recomputed), hash(a));
  assert.notEqual(hash(a), loadPolicy(model).model.weightsSha256(), "training moved the weights");
  assert.ok(existsSync(join(dir, "b/model.safetensors")) && existsSync(join(dir, "b/tokenizer.json")));

  write("bad.jsonl", [
    { prompt: "x", chosen: "y", rejected: "z" },
    { prompt: "x", chosen: "y" },
  ]);
  const bad = train("bad.jsonl", "c");
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^dno: error: .*bad\.jsonl:2: .*rejected/);
  assert.ok(!existsSync(join(dir, "c")));
});

test("with train.lora, the `dno train` command writes the same adapter checkpoints as the in-process trainer", () => {
  const lora = (trainer = "") =>
    config(trainer).replace(
      "train: { lr: 0.003, batch_size: 4, epochs: 2 }",
      "train: { lr: 0.01, batch_size: 4, lora: { r: 2 } }",
    );
  const runs = [lora(), lora(commandTrainer(dnoTrain))].map((text) => {
    const dir = setupRun(text, "dno-trainer-");
    const r = dno(dir, "run", "--config", "dno.yaml");
    assert.equal(r.status, 0, r.stderr);
    return { dir, hash: finalHash(r.stdout) };
  });
  assert.ok(runs[0]!.hash);
  assert.equal(runs[1]!.hash, runs[0]!.hash);
  for (const { dir } of runs) {
    const adapter = JSON.parse(readFileSync(join(dir, "run/checkpoints/pi_3/adapter_config.json"), "utf8"));
    assert.equal(adapter.base_model_name_or_path, "../pi_2");
  }
});

test("dno train on conversational TRL rows goes through the chat template, as sampling does", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-train-chat-"));
  const model = join(dir, "model");
  const template =
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";
  const config = parseConfig(
    { vocab_size: 259, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2 },
    "test",
  );
  CausalLM.init(config, 3, 0.3).save(model);
  saveTokenizer(byteTokenizer({ chatTemplate: template }), model);
  const policy = loadPolicy(model);
  const pairs = [
    ["rev ab=", "ba", "ab"],
    ["rev xyz=", "zyx", "xzy"],
  ];
  const chat = pairs.map(([p, c, r]) => ({
    prompt: [{ role: "user", content: p }],
    chosen: [{ role: "assistant", content: c }],
    rejected: [{ role: "assistant", content: r }],
  }));
  // The same pairs as ids: the prompt through the template with the generation prompt, responses + EOS.
  const ids = pairs.map(([p, c, r]) => ({
    prompt: p,
    chosen: c,
    rejected: r,
    prompt_ids: policy.tokenizer.encode(
      policy.tokenizer.applyChatTemplate([{ role: "user", content: p! }], { addGenerationPrompt: true }),
      { addSpecialTokens: false },
    ),
    chosen_ids: [...Buffer.from(c!)].concat(policy.tokenizer.eosTokenIds[0]!),
    rejected_ids: [...Buffer.from(r!)].concat(policy.tokenizer.eosTokenIds[0]!),
  }));
  const hashes = [chat, ids].map((rows, i) => {
    writeFileSync(join(dir, `${i}.jsonl`), rows.map((r) => `${JSON.stringify(r)}\n`).join(""));
    const r = dno(
      dir,
      "train",
      "--model",
      model,
      "--pairs",
      `${i}.jsonl`,
      "--out",
      `out${i}`,
      "--lr",
      "0.01",
    );
    assert.equal(r.status, 0, r.stderr);
    return /weights sha256 ([0-9a-f]{64})/.exec(r.stderr)?.[1];
  });
  assert.ok(hashes[0]);
  assert.equal(hashes[1], hashes[0]);
});
