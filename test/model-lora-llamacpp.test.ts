/**
 * Our llama.cpp LoRA adapter GGUF (`dno export --adapter-only`), loaded by node-llama-cpp on top of our
 * base GGUF, against our engine sampling with the adapter unmerged: the same greedy tokens and top-5
 * probabilities at every step. All seven projections with GQA; q/k only with rsLoRA (the Q/K row
 * permutation of B and the alpha that carries rsLoRA's scale).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { generate } from "../src/model/generate.js";
import { exportGguf, ggufSource, readGguf } from "../src/model/gguf.js";
import { exportGgufAdapter } from "../src/model/gguf-lora.js";
import { LoraAdapter, loraConfigSchema } from "../src/model/lora.js";
import { byteTokenizer } from "../src/model/tokenizer.js";
import { assertLlamaCppParity } from "./llamacpp-parity.js";
import { randomModel, TINY_CONFIGS } from "./model-random.js";

const PROMPT = [256, 84, 104, 101, 32];
const CASES = [
  { name: "gqa", lora: { r: 4, alpha: 8 } },
  { name: "plain", lora: { r: 3, alpha: 2, target_modules: ["q_proj", "k_proj"], rslora: true } },
];

for (const c of CASES) {
  test(`llama.cpp applies our LoRA adapter GGUF as we do (${c.name}, ${c.lora.target_modules?.join("+") ?? "all seven"})`, async () => {
    const m = randomModel(TINY_CONFIGS[c.name]!, 21);
    const adapter = LoraAdapter.init(m.config, loraConfigSchema.parse(c.lora), 4);
    const rng = new Rng(5);
    for (const { b } of adapter.pairs()) {
      const t = adapter.tensor(b.name);
      for (let i = 0; i < t.length; i++) t[i] = 0.3 * rng.normal();
    }
    const dir = mkdtempSync(join(tmpdir(), "dno-lora-gguf-"));
    exportGguf(join(dir, "base.gguf"), ggufSource(m.config, m.params), byteTokenizer(), { dtype: "f32" });
    exportGgufAdapter(join(dir, "adapter.gguf"), adapter, { dtype: "f32" });
    const g = readGguf(join(dir, "adapter.gguf"));
    assert.equal(g.metadata.get("general.type"), "adapter");
    assert.equal(g.metadata.get("adapter.type"), "lora");
    assert.deepEqual(g.tensors.get("blk.1.attn_q.weight.lora_a")!.dims, [m.config.hiddenSize, c.lora.r]);
    const sample = {
      samplesPerPrompt: 1,
      temperature: 0,
      maxNewTokens: 10,
      eosTokenIds: [],
      seed: 0,
      returnLogits: true,
    };
    const withAdapter = { ...m, adapter: { spec: adapter.spec, params: adapter.params } };
    const ours = (await generate(withAdapter, [PROMPT], sample))[0]![0]!;
    const plain = (await generate(m, [PROMPT], sample))[0]![0]!;
    assert.notDeepEqual(ours.logits![0], plain.logits![0], "the adapter changes the model");
    await assertLlamaCppParity(join(dir, "base.gguf"), PROMPT, ours, 2e-4, join(dir, "adapter.gguf"));
  });
}
