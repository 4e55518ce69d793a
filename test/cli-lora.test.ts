/** `--adapter DIR` on dno generate and dno export (merged, or --adapter-only as a llama.cpp adapter GGUF). */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Rng } from "../src/core/rng.js";
import { ContinuousBatcher } from "../src/model/batcher.js";
import { parseConfig } from "../src/model/config.js";
import { readGguf } from "../src/model/gguf.js";
import { LoraAdapter, loraConfigSchema } from "../src/model/lora.js";
import { CausalLM } from "../src/model/model.js";
import { byteTokenizer, saveTokenizer } from "../src/model/tokenizer.js";
import { dnoInProcess } from "./cli-in-process.js";

/** Runs the CLI in this process; its exit code (its output is captured and dropped). */
const dno = async (...args: string[]) => (await dnoInProcess(args)).code;

function fixture(): { dir: string; model: string; adapter: string } {
  const dir = mkdtempSync(join(tmpdir(), "dno-cli-lora-"));
  const config = parseConfig(
    { vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2 },
    "test",
  );
  const model = join(dir, "model");
  CausalLM.init(config, 1, 0.3).save(model);
  saveTokenizer(byteTokenizer(), model);
  const adapter = LoraAdapter.init(config, loraConfigSchema.parse({ r: 2, alpha: 4 }), 2);
  const rng = new Rng(3);
  for (const { b } of adapter.pairs()) {
    const t = adapter.tensor(b.name);
    for (let i = 0; i < t.length; i++) t[i] = 0.5 * rng.normal();
  }
  adapter.save(join(dir, "adapter"), model);
  return { dir, model, adapter: join(dir, "adapter") };
}

test("dno generate --adapter samples the adapted model", async () => {
  const { dir, model, adapter } = fixture();
  writeFileSync(join(dir, "p.jsonl"), '{"prompt":"hello"}\n');
  const run = async (out: string, ...extra: string[]) => {
    const args = ["generate", "--model", model, "--input", join(dir, "p.jsonl"), "--output", out];
    assert.equal(await dno(...args, "--temperature", "0", "--max-new-tokens", "12", ...extra), 0);
    return JSON.parse(readFileSync(out, "utf8")).responses[0];
  };
  const plain = await run(join(dir, "a.jsonl"));
  const adapted = await run(join(dir, "b.jsonl"), "--adapter", adapter);
  assert.notDeepEqual(adapted.tokens, plain.tokens);
  // the same adapter as an adapter checkpoint over the model (a run's pi_{t+1}) samples the same
  const ckpt = join(dir, "pi_2");
  LoraAdapter.load(adapter, CausalLM.load(model).config).save(ckpt, "../model");
  saveTokenizer(byteTokenizer(), ckpt);
  const args = [
    "generate",
    "--model",
    ckpt,
    "--input",
    join(dir, "p.jsonl"),
    "--output",
    join(dir, "c.jsonl"),
  ];
  assert.equal(await dno(...args, "--temperature", "0", "--max-new-tokens", "12"), 0);
  assert.deepEqual(
    JSON.parse(readFileSync(join(dir, "c.jsonl"), "utf8")).responses[0].tokens,
    adapted.tokens,
  );
  const merged = CausalLM.load(model, { adapter });
  merged.mergeAdapter();
  const lp = merged.sequenceLogprobs([
    { prompt: [256, ...Buffer.from("hello")], response: adapted.tokens },
  ])[0]!;
  assert.ok(Math.abs(lp - adapted.logprob) < 1e-3, `${lp} vs ${adapted.logprob}`);
});

test("dno export --adapter merges it; --adapter-only writes the llama.cpp adapter GGUF", async () => {
  const { dir, model, adapter } = fixture();
  const merged = join(dir, "merged.gguf");
  assert.equal(
    await dno("export", "--model", model, "--adapter", adapter, "--output", merged, "--dtype", "f32"),
    0,
  );
  const plain = join(dir, "plain.gguf");
  assert.equal(await dno("export", "--model", model, "--output", plain, "--dtype", "f32"), 0);
  assert.notDeepEqual(readFileSync(merged), readFileSync(plain));
  assert.equal(readGguf(merged).metadata.get("general.type"), undefined);
  const only = join(dir, "adapter.gguf");
  assert.equal(
    await dno("export", "--model", model, "--adapter", adapter, "--adapter-only", "--output", only),
    0,
  );
  const g = readGguf(only);
  assert.equal(g.metadata.get("general.type"), "adapter");
  assert.equal(g.metadata.get("adapter.lora.alpha"), 4);
  assert.equal(g.tensors.size, 2 * 7 * 2);
  assert.equal(g.tensors.get("blk.0.ffn_down.weight.lora_b")!.type, 1, "--dtype f16 by default");
  assert.notEqual(await dno("export", "--model", model, "--adapter-only", "--output", only), 0);
  // an adapter checkpoint (a run's pi_{t+1}) as the model: its config comes from the base under it
  const ckpt = join(dir, "pi_2");
  LoraAdapter.load(adapter, CausalLM.load(model).config).save(ckpt, "../model");
  saveTokenizer(byteTokenizer(), ckpt);
  assert.equal(
    await dno("export", "--model", ckpt, "--adapter", adapter, "--adapter-only", "--output", only),
    0,
  );
  const twice = join(dir, "twice.gguf");
  assert.equal(await dno("export", "--model", ckpt, "--adapter", adapter, "--output", twice), 0);
  assert.notDeepEqual(readFileSync(twice), readFileSync(merged));
});

test("dno serve's continuous batcher samples with the --adapter the model was loaded with", async () => {
  const { model, adapter } = fixture();
  const adapted = CausalLM.load(model, { adapter });
  const tokenizer = byteTokenizer();
  const prompt = tokenizer.encode("hello");
  const request = {
    prompts: [prompt],
    n: 1,
    temperature: 0,
    topP: 1,
    topK: 0,
    maxNewTokens: 12,
    eosTokenIds: [],
    seed: 0,
    stopStrings: [],
  };
  const served = await new ContinuousBatcher(adapted, tokenizer).submit(request);
  const options = { samplesPerPrompt: 1, temperature: 0, maxNewTokens: 12, eosTokenIds: [], seed: 0 };
  const direct = (await adapted.generate([prompt], options))[0]![0]!;
  assert.deepEqual(served[0]!.tokens, direct.tokens);
  const plain = (await CausalLM.load(model).generate([prompt], options))[0]![0]!;
  assert.notDeepEqual(plain.tokens, direct.tokens);
});
