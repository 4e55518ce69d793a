/**
 * Token log-probs with a LoRA adapter applied unmerged (`dno logprobs --adapter`) against
 * ../shared/reference/torch_llama.py `logprobs --lora`, which merges the same PEFT directory into the
 * weights in float64: all seven projections with rsLoRA on a GQA Qwen2 (q/k/v biases), and q/v only on
 * a plain Llama. Skips, saying so, where PyTorch is not installed.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { main } from "../src/cli/main.js";
import { Rng } from "../src/core/rng.js";
import { parseConfig } from "../src/model/config.js";
import { LORA_TARGETS, LoraAdapter, loraConfigSchema } from "../src/model/lora.js";
import { CausalLM } from "../src/model/model.js";
import { findTorchReference } from "../src/util/shared-dir.js";
import { PYTHON, torchReferenceSkip } from "./python-reference.js";

const REFERENCE = findTorchReference();
const skip = torchReferenceSkip(REFERENCE);
if (skip) console.log(`# SKIP model-lora-reference: ${skip}`);

const base = {
  vocab_size: 97,
  hidden_size: 32,
  intermediate_size: 52,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};
const CASES = [
  {
    name: "qwen2 gqa, all seven, rsLoRA",
    hf: { ...base, model_type: "qwen2", num_key_value_heads: 2, tie_word_embeddings: false },
    lora: { r: 4, alpha: 6, rslora: true },
  },
  {
    name: "llama, q_proj and v_proj",
    hf: base,
    lora: { r: 2, alpha: 5, target_modules: ["q_proj", "v_proj"] },
  },
];

function maxRelErr(a: number[], b: number[]): number {
  assert.equal(a.length, b.length);
  let abs = 0;
  let scale = 0;
  a.forEach((x, i) => {
    abs = Math.max(abs, Math.abs(x - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  });
  return abs / scale;
}

test("dno logprobs --adapter equals PyTorch with the PEFT adapter merged (rel err <= 1e-4)", {
  skip,
}, async () => {
  const root = mkdtempSync(join(tmpdir(), "dno-lora-ref-"));
  const rng = new Rng(11);
  const sequences = [4, 9, 1, 13].map((n) => Array.from({ length: n }, () => rng.int(base.vocab_size)));
  writeFileSync(join(root, "seqs.json"), JSON.stringify({ sequences }));
  for (const [i, c] of CASES.entries()) {
    const model = CausalLM.init(parseConfig(c.hf, c.name), i, 0.2);
    const modelDir = join(root, `model-${i}`);
    model.save(modelDir);
    const adapter = LoraAdapter.init(model.config, loraConfigSchema.parse(c.lora), i);
    // a trained adapter: B away from PEFT's zero start, so the adapter changes every log-prob
    for (const { b } of adapter.pairs()) {
      const t = adapter.tensor(b.name);
      for (let k = 0; k < t.length; k++) t[k] = 0.3 * rng.normal();
    }
    const adapterDir = join(root, `adapter-${i}`);
    adapter.save(adapterDir, modelDir);

    const refOut = join(root, `ref-${i}.json`);
    const args = ["logprobs", "--model", modelDir, "--lora", adapterDir, "--input", join(root, "seqs.json")];
    execFileSync(PYTHON, [REFERENCE!, ...args, "--out", refOut, "--dtype", "float64"], { stdio: "ignore" });
    const ours = join(root, `dno-${i}.json`);
    const code = await main([
      "node",
      "dno",
      "logprobs",
      "--model",
      modelDir,
      "--adapter",
      adapterDir,
      "--input",
      join(root, "seqs.json"),
      "--out",
      ours,
    ]);
    assert.equal(code, 0);
    type Out = { token_logprobs: number[][]; last_logits: number[][] };
    const ref = JSON.parse(readFileSync(refOut, "utf8")) as Out;
    const got = JSON.parse(readFileSync(ours, "utf8")) as Out;
    const lp = maxRelErr(got.token_logprobs.flat(), ref.token_logprobs.flat());
    const logits = maxRelErr(got.last_logits.flat(), ref.last_logits.flat());
    console.log(
      `  ${c.name}: token log-probs rel err ${lp.toExponential(2)}, last logits ${logits.toExponential(2)}`,
    );
    assert.ok(lp <= 1e-4 && logits <= 1e-4, `${c.name}: ${lp}, ${logits}`);
    // and the adapter matters: the base alone is far from the reference
    const plain = model.tokenLogprobs(sequences).tokenLogprobs.flatMap((x) => [...x]);
    assert.ok(maxRelErr(plain, ref.token_logprobs.flat()) > 1e-2, `${c.name}: the adapter changed nothing`);
    assert.equal(adapter.pairs().length, (c.lora.target_modules ?? LORA_TARGETS).length * 2);
  }
});
