import assert from "node:assert/strict";
import { test } from "node:test";
import { parseConfig, toHfConfig } from "../src/model/config.js";
import { DnoError } from "../src/util/errors.js";

const tiny = {
  vocab_size: 300,
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
};

test("config: Llama defaults as Hugging Face fills them in", () => {
  const c = parseConfig(tiny, "cfg.json");
  assert.equal(c.modelType, "llama");
  assert.equal(c.numKvHeads, 4);
  assert.equal(c.headDim, 16);
  assert.equal(c.rmsNormEps, 1e-6);
  assert.equal(c.ropeTheta, 10000);
  assert.equal(c.ropeLlama3, null);
  assert.deepEqual(
    [c.qkvBias, c.oBias, c.tieWordEmbeddings, c.slidingWindow, c.padTokenId],
    [false, false, false, 0, -1],
  );
});

test("config: Qwen2 biases, Llama attention_bias, Mistral window, llama3 RoPE, GQA, eos lists", () => {
  const q = parseConfig(
    { ...tiny, model_type: "qwen2", tie_word_embeddings: true, sliding_window: 4096 },
    "q",
  );
  assert.deepEqual([q.qkvBias, q.oBias, q.tieWordEmbeddings, q.slidingWindow], [true, false, true, 0]);
  const l = parseConfig({ ...tiny, attention_bias: true, num_key_value_heads: 2, eos_token_id: [5, 6] }, "l");
  assert.deepEqual([l.qkvBias, l.oBias, l.numKvHeads, l.eosTokenIds], [true, true, 2, [5, 6]]);
  assert.equal(parseConfig({ ...tiny, model_type: "mistral" }, "m").slidingWindow, 4096);
  assert.equal(parseConfig({ ...tiny, model_type: "mistral", sliding_window: null }, "m").slidingWindow, 0);
  const r = parseConfig(
    {
      ...tiny,
      rope_theta: 500000,
      rope_scaling: {
        rope_type: "llama3",
        factor: 8,
        low_freq_factor: 1,
        high_freq_factor: 4,
        original_max_position_embeddings: 8192,
      },
    },
    "r",
  );
  assert.deepEqual(r.ropeLlama3, {
    factor: 8,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assert.equal(r.ropeTheta, 500000);
});

test("config: unsupported fields are refused by name", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ model_type: "gemma" }, /cfg\.json: model_type: "gemma" is not supported/],
    [{ hidden_act: "gelu" }, /hidden_act: "gelu"/],
    [{ mlp_bias: true }, /mlp_bias/],
    [{ rope_scaling: { type: "linear", factor: 2 } }, /rope_scaling\.rope_type: "linear" is not supported/],
    [{ rope_scaling: { rope_type: "llama3", factor: 8 } }, /rope_scaling\.low_freq_factor: required/],
    [{ num_key_value_heads: 3 }, /num_key_value_heads: 3 does not divide/],
    [{ model_type: "qwen2", use_sliding_window: true }, /use_sliding_window/],
    [{ architectures: ["LlamaForSequenceClassification"] }, /architectures: LlamaForSequenceClassification/],
    [{ hidden_size: "64" }, /hidden_size: /],
    [{ attention_dropout: 0.1 }, /attention_dropout/],
  ];
  for (const [fields, message] of cases) {
    assert.throws(
      () => parseConfig({ ...tiny, ...fields }, "cfg.json"),
      (e: unknown) => {
        assert.ok(e instanceof DnoError);
        assert.match(e.message, message);
        return true;
      },
    );
  }
  const { vocab_size: _, ...missing } = tiny;
  assert.throws(() => parseConfig(missing, "cfg.json"), /cfg\.json: vocab_size: /);
});

test("config: toHfConfig keeps the file's fields and writes the defaults out", () => {
  const c = parseConfig({ ...tiny, bos_token_id: 1, custom_field: "kept" }, "c");
  const hf = toHfConfig(c);
  assert.equal(hf.custom_field, "kept");
  assert.equal(hf.bos_token_id, 1);
  assert.deepEqual(hf.architectures, ["LlamaForCausalLM"]);
  assert.equal(hf.num_key_value_heads, 4);
  assert.deepEqual(parseConfig(hf, "again"), { ...c, raw: hf });
});
