import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  exportGguf,
  float16ToFloat32,
  float32ToFloat16Bytes,
  ggufSource,
  permuteRotaryRows,
  readGguf,
} from "../src/model/gguf.js";
import { byteTokenizer, loadTokenizer, type Tokenizer } from "../src/model/tokenizer.js";
import { randomModel, TINY_CONFIGS } from "./model-random.js";

const fixture = (name: string): string => join(import.meta.dirname, "..", "..", "test", "fixtures", name);

const tiny = (overrides: Record<string, unknown> = {}) =>
  randomModel({ ...TINY_CONFIGS.gqa!, vocab_size: 259, ...overrides }, 3);

test("permuteRotaryRows interleaves each head's halves: rows [a0 a1 b0 b1] -> [a0 b0 a1 b1]", () => {
  const w = Float32Array.from([0, 1, 2, 3, 10, 11, 12, 13]); // 2 heads of dim 4, one column
  assert.deepEqual([...permuteRotaryRows(w, 2, 4)], [0, 2, 1, 3, 10, 12, 11, 13]);
});

test("float16 conversion rounds to nearest even and keeps specials", () => {
  const values = Float32Array.from([0, -0, 1, -2.5, 65504, 70000, 1e-8, 6.1e-5, 0.1, Number.NaN, -Infinity]);
  const halves = new Uint16Array(float32ToFloat16Bytes(values).buffer);
  const back = [...halves].map(float16ToFloat32);
  assert.deepEqual(back.slice(0, 5), [0, -0, 1, -2.5, 65504]);
  assert.equal(back[5], Number.POSITIVE_INFINITY);
  assert.equal(back[6], 0);
  assert.ok(Math.abs(back[7]! - 6.1e-5) < 1e-7);
  assert.equal(back[8], 0.0999755859375);
  assert.ok(Number.isNaN(back[9]));
  assert.equal(back[10], Number.NEGATIVE_INFINITY);
});

for (const dtype of ["f32", "f16"] as const) {
  test(`GGUF ${dtype}: llama.cpp's keys, tensor names and dims; weights read back (Q/K permuted)`, () => {
    const dir = mkdtempSync(join(tmpdir(), "dno-gguf-"));
    const m = tiny();
    const source = ggufSource(m.config, m.params);
    const path = join(dir, "m.gguf");
    exportGguf(path, source, byteTokenizer(), { dtype });
    const g = readGguf(path);
    assert.equal(g.version, 3);
    assert.equal(g.metadata.get("general.architecture"), "llama");
    assert.equal(g.metadata.get("general.file_type"), dtype === "f16" ? 1 : 0);
    assert.equal(g.metadata.get("llama.block_count"), 2);
    assert.equal(g.metadata.get("llama.attention.head_count_kv"), 2);
    assert.equal(g.metadata.get("tokenizer.ggml.model"), "gpt2");
    assert.equal((g.metadata.get("tokenizer.ggml.tokens") as string[]).length, 259);
    assert.equal(g.metadata.get("tokenizer.ggml.bos_token_id"), 256);
    assert.equal(g.metadata.get("tokenizer.ggml.eos_token_id"), 257);
    assert.equal(g.tensors.size, 2 + 9 * 2 + 1);
    assert.deepEqual(g.tensors.get("token_embd.weight")!.dims, [64, 259]);
    assert.deepEqual(g.tensors.get("blk.1.ffn_down.weight")!.dims, [96, 64]);
    assert.equal(g.tensors.get("blk.0.attn_norm.weight")!.type, 0, "1-D tensors stay F32");
    const tol = dtype === "f32" ? 0 : 2e-3;
    const close = (a: Float32Array, b: Float32Array) => {
      assert.equal(a.length, b.length);
      for (let i = 0; i < a.length; i++)
        assert.ok(Math.abs(a[i]! - b[i]!) <= tol * Math.max(1, Math.abs(b[i]!)));
    };
    close(
      g.read("blk.1.attn_k.weight"),
      permuteRotaryRows(source.tensor("model.layers.1.self_attn.k_proj.weight"), 2, 8),
    );
    close(g.read("blk.1.attn_v.weight"), source.tensor("model.layers.1.self_attn.v_proj.weight"));
    close(g.read("output.weight"), source.tensor("lm_head.weight"));
  });
}

test("tied embeddings export without output.weight", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-gguf-"));
  const path = join(dir, "m.gguf");
  const m = tiny({ tie_word_embeddings: true });
  exportGguf(path, ggufSource(m.config, m.params), byteTokenizer(), { dtype: "f32" });
  assert.equal(readGguf(path).tensors.has("output.weight"), false);
});

test("node-llama-cpp loads the exported GGUF and tokenizes like the Hugging Face tokenizer", async () => {
  const { getLlama } = await import("node-llama-cpp");
  const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  const dir = mkdtempSync(join(tmpdir(), "dno-gguf-"));
  const cases: [string, Tokenizer][] = [
    ["byte", byteTokenizer()],
    ["qwen2", loadTokenizer(fixture("tok-qwen2"))],
    ["llama3", loadTokenizer(fixture("tok-llama3"))],
    ["tinyllama", loadTokenizer(fixture("tok-tinyllama"))],
  ];
  const texts = ["hello world the", "héllo wörld 👋🏽", "  two  spaces\n\nnew lines"];
  for (const [name, tok] of cases) {
    const path = join(dir, `${name}.gguf`);
    const m = tiny({ vocab_size: tok.vocabSize + 3 });
    exportGguf(path, ggufSource(m.config, m.params), tok, { dtype: "f16" });
    const model = await llama.loadModel({ modelPath: path });
    try {
      for (const text of texts) {
        assert.deepEqual(
          model.tokenize(text),
          tok.encode(text, { addSpecialTokens: false }),
          `${name}: ${text}`,
        );
      }
      assert.equal(model.tokens.bos ?? undefined, tok.bosTokenId, name);
    } finally {
      await model.dispose();
    }
  }
});
