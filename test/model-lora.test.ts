/**
 * LoRA on CausalLM: PEFT's initialisation and file format, training the adapter alone with the base
 * frozen, merge against the unmerged forward and sampler (float32), and the errors a bad adapter
 * directory gives.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { sequenceLossFn } from "../src/core/objectives.js";
import { Rng } from "../src/core/rng.js";
import { parseConfig } from "../src/model/config.js";
import { LORA_TARGETS, LoraAdapter, loraConfigSchema } from "../src/model/lora.js";
import { CausalLM, type Example } from "../src/model/model.js";
import { readSafetensors, writeSafetensors } from "../src/model/safetensors.js";
import { AdamW } from "../src/train/adamw.js";
import { trainStep } from "../src/train/step.js";
import { TINY_CONFIGS } from "./model-random.js";

const config = parseConfig(TINY_CONFIGS.gqa!, "gqa");
const tmp = () => mkdtempSync(join(tmpdir(), "dno-lora-"));
const lora = (c: Record<string, unknown>) => loraConfigSchema.parse(c);

function randomB(adapter: LoraAdapter, seed: number, std = 0.2): void {
  const rng = new Rng(seed);
  for (const { b } of adapter.pairs()) {
    const t = adapter.tensor(b.name);
    for (let i = 0; i < t.length; i++) t[i] = std * rng.normal();
  }
}

const sequences = [
  [1, 40, 41, 42, 7, 9],
  [5, 6, 200, 3],
];

test("LoRA init is PEFT's: A uniform(+-1/sqrt(in)) from the seed, B zero, so the model is unchanged", () => {
  const model = CausalLM.init(config, 1);
  const a1 = LoraAdapter.init(config, lora({ r: 4 }), 9);
  const a2 = LoraAdapter.init(config, lora({ r: 4 }), 9);
  assert.deepEqual(a1.params, a2.params);
  assert.notDeepEqual(a1.params, LoraAdapter.init(config, lora({ r: 4 }), 10).params);
  for (const { a, b } of a1.pairs()) {
    const bound = 1 / Math.sqrt(a.shape[1]!);
    const A = a1.tensor(a.name);
    assert.ok(A.every((x) => Math.abs(x) <= bound) && A.some((x) => Math.abs(x) > bound / 2));
    assert.ok(a1.tensor(b.name).every((x) => x === 0));
  }
  const before = model.tokenLogprobs(sequences).tokenLogprobs;
  model.attachAdapter(a1);
  assert.deepEqual(model.tokenLogprobs(sequences).tokenLogprobs, before);
});

test("LoRA adapters save and load in PEFT's format: keys, shapes [r, in] / [out, r], adapter_config.json", () => {
  const dir = tmp();
  const adapter = LoraAdapter.init(
    config,
    lora({ r: 3, alpha: 6, target_modules: ["v_proj", "q_proj", "down_proj"], rslora: true }),
    2,
  );
  randomB(adapter, 3);
  adapter.save(dir, "my/base-model");
  const cfg = JSON.parse(readFileSync(join(dir, "adapter_config.json"), "utf8"));
  assert.equal(cfg.peft_type, "LORA");
  assert.equal(cfg.r, 3);
  assert.equal(cfg.lora_alpha, 6);
  assert.equal(cfg.use_rslora, true);
  assert.equal(cfg.base_model_name_or_path, "my/base-model");
  assert.deepEqual(cfg.target_modules, ["q_proj", "v_proj", "down_proj"]);
  const tensors = readSafetensors(join(dir, "adapter_model.safetensors"));
  assert.equal(tensors.size, 3 * 2 * config.numLayers);
  const q = "base_model.model.model.layers.1.self_attn.q_proj";
  assert.deepEqual(tensors.get(`${q}.lora_A.weight`)!.shape, [3, config.hiddenSize]);
  assert.deepEqual(tensors.get(`${q}.lora_B.weight`)!.shape, [config.numHeads * config.headDim, 3]);
  assert.deepEqual(tensors.get("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight")!.shape, [
    3,
    config.intermediateSize,
  ]);
  const back = LoraAdapter.load(dir, config);
  assert.deepEqual(back.config, adapter.config);
  assert.deepEqual(back.params, adapter.params);
  assert.equal(back.scale, 6 / Math.sqrt(3));
});

test("LoRA training updates the adapter alone: the base is bit-identical, no base gradient buffer", () => {
  const model = CausalLM.init(config, 4);
  const baseSha = model.weightsSha256();
  const adapter = LoraAdapter.init(config, lora({ r: 4, alpha: 8 }), 5);
  model.attachAdapter(adapter, { train: true });
  assert.equal(model.trainable.params, adapter.params);
  const optimizer = new AdamW(model, { weightDecay: 0.01 });
  assert.equal(optimizer.m.length, adapter.params.length);
  const rng = new Rng(6);
  const examples: Example[] = Array.from({ length: 4 }, () => ({
    prompt: [1, rng.int(250)],
    response: Array.from({ length: 6 }, () => rng.int(250)),
  }));
  const sft = (lp: Float64Array) => ({
    loss: -lp.reduce((a, b) => a + b, 0) / lp.length,
    grad: new Float64Array(lp.length).fill(-1 / lp.length),
  });
  const losses: number[] = [];
  for (let s = 0; s < 8; s++) losses.push(trainStep(model, optimizer, [{ examples, loss: sft }], 1e-2).loss);
  assert.ok(losses[7]! < losses[0]! - 0.5, `loss ${losses[0]} -> ${losses[7]}`);
  assert.equal(model.weightsSha256(), baseSha);
  assert.ok(adapter.pairs().every(({ b }) => adapter.tensor(b.name).some((x) => x !== 0)));
  // a DPO-style loss through the same path: its gradient reaches every adapter tensor
  model.zeroGrad();
  const dpo = sequenceLossFn(
    "dpo",
    { refChosen: new Float64Array(2).fill(-30), refRejected: new Float64Array(2).fill(-30) },
    { beta: 0.1 },
  );
  model.accumulateGradients(examples, dpo);
  for (const slot of adapter.layout) {
    assert.ok(
      adapter.grads.subarray(slot.offset, slot.offset + slot.size).some((g) => g !== 0),
      slot.name,
    );
  }
});

test("merge folds the adapter in: merged forward and sampling equal the unmerged ones (float32)", async () => {
  const model = CausalLM.init(config, 7);
  const adapter = LoraAdapter.init(config, lora({ r: 4, alpha: 4 }), 8);
  randomB(adapter, 9);
  model.attachAdapter(adapter);
  const unmerged = model.tokenLogprobs(sequences).tokenLogprobs.flatMap((x) => [...x]);
  const opts = { samplesPerPrompt: 2, temperature: 1, maxNewTokens: 10, eosTokenIds: [], seed: 3 };
  const sampledUnmerged = await model.generate([[1, 2, 3]], opts);
  // the sampler's log-probs with the adapter are the training forward's
  const s = sampledUnmerged[0]![0]!;
  const scored = model.sequenceLogprobs([{ prompt: [1, 2, 3], response: s.tokens }])[0]!;
  assert.ok(Math.abs(scored - s.logprob) < 1e-3 * Math.max(1, Math.abs(scored)));

  const base = CausalLM.init(config, 7)
    .tokenLogprobs(sequences)
    .tokenLogprobs.flatMap((x) => [...x]);
  assert.ok(
    unmerged.some((x, i) => Math.abs(x - base[i]!) > 1e-2),
    "the adapter changes the model",
  );
  model.mergeAdapter();
  assert.equal(model.adapter, null);
  const merged = model.tokenLogprobs(sequences).tokenLogprobs.flatMap((x) => [...x]);
  for (let i = 0; i < merged.length; i++) assert.ok(Math.abs(merged[i]! - unmerged[i]!) < 1e-4, `token ${i}`);
  const sampledMerged = await model.generate([[1, 2, 3]], opts);
  assert.deepEqual(
    sampledMerged[0]!.map((x) => x.tokens),
    sampledUnmerged[0]!.map((x) => x.tokens),
  );
});

test("a bad adapter directory gives one error naming the file and the place", () => {
  const good = tmp();
  LoraAdapter.init(config, lora({ r: 2, target_modules: ["q_proj"] }), 1).save(good, "base");
  const cfg = JSON.parse(readFileSync(join(good, "adapter_config.json"), "utf8"));
  const variant = (
    edit: (c: Record<string, unknown>) => void,
    tensors?: (t: Map<string, { name: string; shape: number[]; data: Float32Array }>) => void,
  ) => {
    const dir = tmp();
    const c = structuredClone(cfg);
    edit(c);
    writeFileSync(join(dir, "adapter_config.json"), JSON.stringify(c));
    const t = readSafetensors(join(good, "adapter_model.safetensors"));
    tensors?.(t);
    writeSafetensors(join(dir, "adapter_model.safetensors"), [...t.values()]);
    return dir;
  };
  const dora = variant((c) => (c.use_dora = true));
  assert.throws(
    () => LoraAdapter.load(dora, config),
    (e: Error) => e.message.includes(`${dora}/adapter_config.json`) && /DoRA/.test(e.message),
  );
  const rank = variant((c) => (c.r = 3));
  assert.throws(
    () => LoraAdapter.load(rank, config),
    /lora_A\.weight has shape \[2,64\], r 3 and the model imply \[3,64\]/,
  );
  const undeclared = variant((c) => (c.target_modules = ["v_proj"]));
  assert.throws(() => LoraAdapter.load(undeclared, config), /q_proj is not in target_modules/);
  const lonely = variant(
    () => {},
    (t) => t.delete("base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"),
  );
  assert.throws(() => LoraAdapter.load(lonely, config), /must come together/);
  const embed = variant(
    () => {},
    (t) =>
      t.set("base_model.model.model.embed_tokens.lora_A.weight", {
        name: "base_model.model.model.embed_tokens.lora_A.weight",
        shape: [2, 3],
        data: new Float32Array(6),
      }),
  );
  assert.throws(
    () => LoraAdapter.load(embed, config),
    /embed_tokens\.lora_A\.weight: not a lora_A\/lora_B weight of q_proj/,
  );
  assert.throws(() => LoraAdapter.load(tmp(), config), /no adapter_config\.json/);
  assert.deepEqual(LoraAdapter.load(good, config).config.targetModules, ["q_proj"]);
  assert.equal(LORA_TARGETS.length, 7);
});

test("an adapter checkpoint loads as its base with the adapter merged, through a chain of them", () => {
  const root = tmp();
  const model = CausalLM.init(config, 12);
  model.save(join(root, "pi_1"));
  const adapters = [13, 14].map((seed) => {
    const a = LoraAdapter.init(config, lora({ r: 2, alpha: 3 }), seed);
    randomB(a, seed);
    return a;
  });
  adapters[0]!.save(join(root, "pi_2"), "../pi_1");
  adapters[1]!.save(join(root, "pi_3"), join(root, "pi_2")); // absolute works too
  for (const a of adapters) {
    model.attachAdapter(a);
    model.mergeAdapter();
  }
  assert.equal(CausalLM.load(join(root, "pi_3")).weightsSha256(), model.weightsSha256());
  adapters[0]!.save(join(root, "loop"), "../loop");
  assert.throws(() => CausalLM.load(join(root, "loop")), /loops back/);
  adapters[0]!.save(join(root, "orphan"), "../nowhere");
  assert.throws(
    () => CausalLM.load(join(root, "orphan")),
    /base_model_name_or_path \.\.\/nowhere: no checkpoint/,
  );
});
