import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { engine } from "../src/engine/index.js";
import { parseConfig } from "../src/model/config.js";
import { CausalLM, type Example, type SequenceLoss } from "../src/model/model.js";
import { AdamW } from "../src/train/adamw.js";
import { learningRate } from "../src/train/schedule.js";
import { trainStep } from "../src/train/step.js";

const tiny = parseConfig(
  {
    vocab_size: 40,
    hidden_size: 32,
    intermediate_size: 48,
    num_hidden_layers: 2,
    num_attention_heads: 4,
    num_key_value_heads: 2,
  },
  "tiny",
);

/** mean over examples of -log p(response | prompt) */
const sft: SequenceLoss = (lp) => ({
  loss: -lp.reduce((a, b) => a + b, 0) / lp.length,
  grad: new Float64Array(lp.length).fill(-1 / lp.length),
});

function examples(seed: number, n: number): Example[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => ({
    prompt: Array.from({ length: 1 + rng.int(4) }, () => rng.int(40)),
    response: Array.from({ length: 1 + rng.int(6) }, () => rng.int(40)),
  }));
}

test("schedule: linear warmup, then cosine or linear decay to the floor", () => {
  const s = { lr: 1, warmupSteps: 4, totalSteps: 14, decay: "cosine" as const, minLrRatio: 0.1 };
  assert.deepEqual(
    [0, 1, 3].map((i) => learningRate(i, s)),
    [0.25, 0.5, 1],
  );
  assert.ok(Math.abs(learningRate(9, s) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(14, s) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRate(99, s) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRate(9, { ...s, decay: "linear" }) - 0.55) < 1e-12);
  assert.equal(learningRate(12, { ...s, decay: "constant" }), 1);
});

test("AdamW: decoupled weight decay and clipping as torch.optim.AdamW + clip_grad_norm_", () => {
  const model = CausalLM.init(tiny, 1);
  const opt = new AdamW(model, { weightDecay: 0.1, maxGradNorm: 0.5, beta2: 0.99 });
  const p0 = Float64Array.from(model.params);
  const m = new Float64Array(p0.length);
  const v = new Float64Array(p0.length);
  const p = Float64Array.from(p0);
  const noDecay = new Uint8Array(p0.length);
  for (const s of model.layout) {
    if (s.name.endsWith(".bias") || s.name.endsWith("norm.weight"))
      noDecay.fill(1, s.offset, s.offset + s.size);
  }
  for (let step = 1; step <= 3; step++) {
    model.zeroGrad();
    model.accumulateGradients(examples(step, 4), sft);
    const g = Float64Array.from(model.grads);
    const norm = Math.sqrt(g.reduce((a, x) => a + x * x, 0));
    const clip = norm > 0.5 ? 0.5 / (norm + 1e-6) : 1;
    const lr = 0.01 * step;
    const info = opt.update(lr);
    assert.ok(Math.abs(info.gradNorm - norm) <= 1e-6 * norm);
    for (let i = 0; i < p.length; i++) {
      const gi = g[i]! * clip;
      m[i] = 0.9 * m[i]! + 0.1 * gi;
      v[i] = 0.99 * v[i]! + 0.01 * gi * gi;
      const wd = noDecay[i] ? 0 : 0.1;
      p[i] =
        p[i]! * (1 - lr * wd) -
        ((lr / (1 - 0.9 ** step)) * m[i]!) / (Math.sqrt(v[i]! / (1 - 0.99 ** step)) + 1e-8);
    }
    // the engine's params are float32, so reset the float64 model to them to compare one step at a time
    let worst = 0;
    for (let i = 0; i < p.length; i++) worst = Math.max(worst, Math.abs(p[i]! - model.params[i]!));
    assert.ok(worst < 2e-6, `step ${step}: worst parameter difference ${worst}`);
    p.set(model.params);
  }
});

test("gradient accumulation over micro-batches equals one big batch", () => {
  const a = CausalLM.init(tiny, 5);
  const b = CausalLM.init(tiny, 5);
  const data = examples(11, 6);
  const optA = new AdamW(a);
  const optB = new AdamW(b);
  trainStep(a, optA, [{ examples: data, loss: sft }], 1e-3);
  trainStep(
    b,
    optB,
    [
      { examples: data.slice(0, 3), loss: sft },
      { examples: data.slice(3), loss: sft },
    ],
    1e-3,
  );
  // mean of the two micro-batch means equals the batch mean here: both halves have 3 examples
  let worst = 0;
  for (let i = 0; i < a.grads.length; i++) worst = Math.max(worst, Math.abs(a.grads[i]! - b.grads[i]!));
  assert.ok(worst < 1e-6, `gradients differ by ${worst}`);
});

test("training from scratch memorises a few sequences; same seed, same weights", () => {
  const run = () => {
    const model = CausalLM.init(tiny, 42);
    const opt = new AdamW(model, { weightDecay: 0.01 });
    const data = examples(3, 8);
    const losses: number[] = [];
    const schedule = { lr: 3e-3, warmupSteps: 5, totalSteps: 60, decay: "cosine" as const };
    for (let step = 0; step < 60; step++) {
      losses.push(trainStep(model, opt, [{ examples: data, loss: sft }], learningRate(step, schedule)).loss);
    }
    return { losses, sha: model.weightsSha256() };
  };
  const first = run();
  console.log(`  loss ${first.losses[0]!.toFixed(3)} -> ${first.losses.at(-1)!.toFixed(3)} in 60 steps`);
  assert.ok(first.losses[0]! > 10, "starts near uniform: about 4 tokens x log(40)");
  assert.ok(first.losses.at(-1)! < first.losses[0]! / 4, `loss only fell to ${first.losses.at(-1)}`);
  assert.equal(run().sha, first.sha);
});

test("CausalLM: save then load gives the same weights, log-probs and config", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-model-"));
  const model = CausalLM.init(
    parseConfig({ ...tiny.raw, tie_word_embeddings: true, pad_token_id: 0 }, "t"),
    9,
  );
  assert.ok(
    model
      .tensor("model.embed_tokens.weight")
      .subarray(0, 32)
      .every((x) => x === 0),
  );
  model.save(dir);
  const back = CausalLM.load(dir);
  assert.equal(back.weightsSha256(), model.weightsSha256());
  const data = examples(2, 5);
  assert.deepEqual(back.sequenceLogprobs(data), model.sequenceLogprobs(data));
  const cfg = JSON.parse(readFileSync(join(dir, "config.json"), "utf8"));
  assert.equal(cfg.tie_word_embeddings, true);
  assert.deepEqual(cfg.architectures, ["LlamaForCausalLM"]);
  // batching does not change results: one example at a time gives the same log-probs
  const one = data.map((e) => model.sequenceLogprobs([e])[0]);
  const all = model.sequenceLogprobs(data);
  for (const [i, x] of one.entries()) assert.ok(Math.abs(x! - all[i]!) < 1e-5);
});

test("AdamW matches torch.optim.AdamW itself", {
  skip: spawnSync("/usr/bin/python3", ["-c", "import torch"]).status !== 0 && "PyTorch not available",
}, () => {
  const model = CausalLM.init(tiny, 8);
  const opt = new AdamW(model, { weightDecay: 0.05, maxGradNorm: 0 });
  const p0 = Array.from(model.params.subarray(0, 64));
  const gs: number[][] = [];
  for (let step = 1; step <= 3; step++) {
    model.zeroGrad();
    model.accumulateGradients(examples(step, 3), sft);
    gs.push(Array.from(model.grads.subarray(0, 64)));
    opt.update(0.02);
  }
  const py = `
import json, sys, torch
p0, gs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float32))
opt = torch.optim.AdamW([p], lr=0.02, weight_decay=0.05)
for g in gs:
    p.grad = torch.tensor(g, dtype=torch.float32)
    opt.step()
print(json.dumps(p.detach().tolist()))`;
  const out = spawnSync("/usr/bin/python3", ["-c", py, JSON.stringify(p0), JSON.stringify(gs)], {
    encoding: "utf8",
  });
  assert.equal(out.status, 0, out.stderr);
  const ref = JSON.parse(out.stdout) as number[];
  for (const [i, x] of ref.entries()) {
    assert.ok(Math.abs(x - model.params[i]!) <= 1e-6, `param ${i}: torch ${x}, ours ${model.params[i]}`);
  }
});

test("CausalLM: bad examples are clear errors; empty responses score 0", () => {
  const model = CausalLM.init(tiny, 2);
  assert.throws(
    () => model.sequenceLogprobs([{ prompt: [], response: [1] }]),
    /example 0: the prompt needs at least one token/,
  );
  assert.throws(
    () =>
      model.sequenceLogprobs([
        { prompt: [1], response: [2] },
        { prompt: [1], response: [3, 40] },
      ]),
    /example 1 response: token 1 is 40, outside the vocabulary \[0, 40\)/,
  );
  assert.throws(() => model.tokenLogprobs([[1, 2.5]]), /sequence 0: token 1 is 2.5/);
  const lp = model.sequenceLogprobs([
    { prompt: [1, 2], response: [] },
    { prompt: [3], response: [4] },
  ]);
  assert.equal(lp[0], 0);
  assert.ok(lp[1]! < 0);
  // a long batch split across native calls gives the same numbers as one call
  const data = examples(9, 7);
  const whole = model.sequenceLogprobs(data);
  model.maxBatchTokens = 5;
  const pieces = model.sequenceLogprobs(data);
  for (const [i, x] of whole.entries()) assert.ok(Math.abs(x - pieces[i]!) < 1e-5);
});

test("training is bit-identical whatever the thread count", () => {
  const e = engine();
  const before = e.numThreads();
  const shaWith = (threads: number) => {
    e.setNumThreads(threads);
    const model = CausalLM.init(tiny, 6);
    const opt = new AdamW(model, { weightDecay: 0.1 });
    for (let step = 0; step < 3; step++)
      trainStep(model, opt, [{ examples: examples(step, 12), loss: sft }], 1e-3);
    return model.weightsSha256();
  };
  try {
    assert.equal(shaWith(1), shaWith(3));
  } finally {
    e.setNumThreads(before);
  }
});
