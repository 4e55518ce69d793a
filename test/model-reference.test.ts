/**
 * The engine against ../shared/reference/torch_llama.py (PyTorch, float64) on random checkpoints the
 * reference writes: token log-probs, last-position logits and every parameter's DPO-loss gradient, for a
 * plain, a GQA (+ llama3 RoPE), a Qwen2 (q/k/v biases), a tied-embedding (+ o_proj bias, pad token) and a
 * Mistral (sliding window) config. Skips, saying so, where PyTorch is not installed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { main } from "../src/cli/main.js";
import { sequenceLossFn } from "../src/core/objectives.js";
import { Rng } from "../src/core/rng.js";
import { CausalLM } from "../src/model/model.js";
import { readSafetensors } from "../src/model/safetensors.js";
import { findTorchReference } from "../src/util/shared-dir.js";
import { PYTHON, torchReferenceSkip } from "./python-reference.js";

const REFERENCE = findTorchReference();
const skip = torchReferenceSkip(REFERENCE);
if (skip) console.log(`# SKIP model-reference: ${skip}`);

const base = {
  vocab_size: 97,
  hidden_size: 32,
  intermediate_size: 52,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};
const CONFIGS: Record<string, Record<string, unknown>> = {
  plain: { ...base },
  gqa_llama3: {
    ...base,
    num_key_value_heads: 2,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: {
      rope_type: "llama3",
      factor: 8,
      low_freq_factor: 1,
      high_freq_factor: 4,
      original_max_position_embeddings: 16,
    },
  },
  qwen2: {
    ...base,
    model_type: "qwen2",
    num_key_value_heads: 2,
    rope_theta: 1000000,
    tie_word_embeddings: false,
  },
  tied_bias_pad: { ...base, tie_word_embeddings: true, attention_bias: true, pad_token_id: 0, head_dim: 6 },
  mistral_window: { ...base, model_type: "mistral", num_key_value_heads: 1, sliding_window: 3 },
};

// One Python process: init each fixture, then the float64 reference's log-probs and DPO gradients.
const DRIVER = `
import json, sys, types
sys.path.insert(0, sys.argv[1])
import torch_llama as t
for job in json.loads(sys.argv[2]):
    ns = lambda **kw: types.SimpleNamespace(**kw)
    t.cmd_init(ns(config=job["config"], out=job["dir"], seed=job["seed"], std=0.2))
    t.cmd_logprobs(ns(model=job["dir"], input=job["seqs"], out=job["lp_out"], dtype="float64"))
    t.cmd_grad(ns(model=job["dir"], input=job["pairs"], out=job["grad_out"], dtype="float64", loss="dpo"))
`;

function randomTokens(rng: Rng, n: number): number[] {
  return Array.from({ length: n }, () => rng.int(base.vocab_size));
}

/** max |a - b| / max |b|, and max |a - b| */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): { rel: number; abs: number } {
  assert.equal(a.length, b.length);
  let abs = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    abs = Math.max(abs, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return { rel: scale === 0 ? abs : abs / scale, abs };
}

test("engine equals PyTorch: log-probs, logits and DPO gradients (rel err <= 1e-4, float32)", {
  skip,
}, async () => {
  const root = mkdtempSync(join(tmpdir(), "dno-ref-"));
  const rng = new Rng(7);
  const seqs = [3, 9, 1, 14, 6].map((n) => randomTokens(rng, n));
  const pairs = [
    {
      prompt: randomTokens(rng, 4),
      chosen: randomTokens(rng, 5),
      rejected: randomTokens(rng, 2),
      ref_chosen: -20.5,
      ref_rejected: -9.25,
    },
    {
      prompt: randomTokens(rng, 1),
      chosen: randomTokens(rng, 7),
      rejected: randomTokens(rng, 8),
      ref_chosen: -30,
      ref_rejected: -31,
    },
    {
      prompt: randomTokens(rng, 6),
      chosen: randomTokens(rng, 1),
      rejected: randomTokens(rng, 3),
      ref_chosen: -4,
      ref_rejected: -14,
    },
  ];
  const beta = 0.5;
  writeFileSync(join(root, "seqs.json"), JSON.stringify({ sequences: seqs }));
  writeFileSync(join(root, "pairs.json"), JSON.stringify({ beta, pairs }));
  const jobs = Object.entries(CONFIGS).map(([name, cfg], i) => {
    const dir = join(root, name);
    mkdirSync(dir);
    writeFileSync(join(root, `${name}.json`), JSON.stringify(cfg));
    return {
      name,
      config: join(root, `${name}.json`),
      dir,
      seed: i,
      seqs: join(root, "seqs.json"),
      pairs: join(root, "pairs.json"),
      lp_out: join(root, `${name}-lp.json`),
      grad_out: join(root, `${name}-grad.safetensors`),
    };
  });
  execFileSync(PYTHON, ["-c", DRIVER, dirname(REFERENCE!), JSON.stringify(jobs)], {
    stdio: ["ignore", "ignore", "inherit"],
  });

  for (const job of jobs) {
    const model = CausalLM.load(job.dir);
    const worst: [string, number, number][] = [];
    const record = (what: string, e: { rel: number; abs: number }) => worst.push([what, e.rel, e.abs]);

    const ref = JSON.parse(readFileSync(job.lp_out, "utf8")) as {
      token_logprobs: number[][];
      last_logits: number[][];
    };
    // `dno logprobs` reads the same input file and writes the same fields as the reference tool
    const cliOut = join(root, `${job.name}-dno-lp.json`);
    const code = await main([
      "node",
      "dno",
      "logprobs",
      "--model",
      job.dir,
      "--input",
      job.seqs,
      "--out",
      cliOut,
    ]);
    assert.equal(code, 0);
    const cli = JSON.parse(readFileSync(cliOut, "utf8")) as typeof ref;
    assert.deepEqual(Object.keys(cli).sort(), Object.keys(ref).sort());
    record("dno logprobs token log-probs", relErr(cli.token_logprobs.flat(), ref.token_logprobs.flat()));
    record("dno logprobs last logits", relErr(cli.last_logits.flat(), ref.last_logits.flat()));
    const ours = model.tokenLogprobs(seqs);
    record(
      "token log-probs",
      relErr(
        ours.tokenLogprobs.flatMap((x) => [...x]),
        ref.token_logprobs.flat(),
      ),
    );
    record(
      "last logits",
      relErr(
        ours.lastLogits.flatMap((x) => [...x]),
        ref.last_logits.flat(),
      ),
    );

    const examples = [
      ...pairs.map((p) => ({ prompt: p.prompt, response: p.chosen })),
      ...pairs.map((p) => ({ prompt: p.prompt, response: p.rejected })),
    ];
    const loss = sequenceLossFn(
      "dpo",
      {
        refChosen: Float64Array.from(pairs, (p) => p.ref_chosen),
        refRejected: Float64Array.from(pairs, (p) => p.ref_rejected),
      },
      { beta },
    );
    model.zeroGrad();
    model.maxBatchTokens = job.name === "qwen2" ? 12 : 16384; // qwen2 also takes the piecewise path
    model.accumulateGradients(examples, loss);
    const refGrads = readSafetensors(job.grad_out);
    let gradScale = 0;
    for (const t of refGrads.values()) for (const x of t.data) gradScale = Math.max(gradScale, Math.abs(x));
    for (const slot of model.layout) {
      const g = model.grads.subarray(slot.offset, slot.offset + slot.size);
      const r = refGrads.get(slot.name);
      assert.ok(r, `${job.name}: reference has no gradient for ${slot.name}`);
      const e = relErr(g, r.data);
      // a tensor whose gradient is tiny next to the others is compared at the scale of the whole gradient
      record(`grad ${slot.name}`, { rel: Math.min(e.rel, e.abs / gradScale), abs: e.abs });
    }
    worst.sort((a, b) => b[1] - a[1]);
    console.log(
      `  ${job.name}: worst ${worst
        .slice(0, 3)
        .map(([w, rel, abs]) => `${w} rel ${rel.toExponential(2)} (abs ${abs.toExponential(2)})`)
        .join("; ")}`,
    );
    for (const [what, rel] of worst) assert.ok(rel <= 1e-4, `${job.name}: ${what}: relative error ${rel}`);
  }
});
