import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  BYTE_TOKENIZER_VOCAB_SIZE,
  byteTokenizer,
  byteToUnicode,
  encodePrompt,
  loadTokenizer,
  saveTokenizer,
} from "../src/model/tokenizer.js";
import { DnoError } from "../src/util/errors.js";

const fixture = (name: string): string => join(import.meta.dirname, "..", "..", "test", "fixtures", name);

const EDGE_TEXTS = [
  "",
  " ",
  "hello world",
  "  two  spaces and trailing  ",
  "\n\t\r\n",
  "héllo wörld",
  "日本語のテキスト",
  "👋🏽 family 🧑‍🤝‍🧑!",
  "tab\there",
  "nul\u0000byte",
  "text with <|im_end|> inside",
];

for (const name of ["tok-qwen2", "tok-llama3", "tok-tinyllama"]) {
  test(`${name}: decode(encode(text)) is the text for unicode, emoji and whitespace`, () => {
    const tok = loadTokenizer(fixture(name));
    for (const text of EDGE_TEXTS) {
      assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false })), text, JSON.stringify(text));
    }
  });
}

test("byte-level BPE applies merges after the pre-tokenizer split (Qwen2 style)", () => {
  const tok = loadTokenizer(fixture("tok-qwen2"));
  const ids = tok.encode("hello world the");
  assert.deepEqual(
    ids.map((id) => tok.idToToken(id)),
    ["hello", "Ġworld", "Ġthe"],
  );
  assert.equal(tok.bosTokenId, undefined);
  assert.deepEqual(tok.eosTokenIds, [tok.encode("<|im_end|>")[0]]);
});

test("SentencePiece-style BPE prepends ▁, adds <s>, and falls back to bytes (TinyLlama style)", () => {
  const tok = loadTokenizer(fixture("tok-tinyllama"));
  const ids = tok.encode("hello world é");
  assert.deepEqual(
    ids.map((id) => tok.idToToken(id)),
    ["<s>", "▁hello", "▁world", "▁", "<0xC3>", "<0xA9>"],
  );
  assert.equal(tok.bosTokenId, 1);
  assert.deepEqual(tok.eosTokenIds, [2]);
});

const CONVERSATION = [
  { role: "system", content: "Be brief." },
  { role: "user", content: "Hi!" },
  { role: "assistant", content: "Hello." },
  { role: "user", content: "Bye" },
];

test("ChatML (Qwen2-Instruct) template renders the expected string", () => {
  const tok = loadTokenizer(fixture("tok-qwen2"));
  assert.equal(
    tok.applyChatTemplate(CONVERSATION, { addGenerationPrompt: true }),
    "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n" +
      "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n",
  );
  // Without a system message the template inserts its default one.
  assert.equal(
    tok.applyChatTemplate([{ role: "user", content: "Hi" }], { addGenerationPrompt: false }),
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
  );
});

test("Llama-3-Instruct template renders the expected string, BOS first and content trimmed", () => {
  const tok = loadTokenizer(fixture("tok-llama3"));
  const text = tok.applyChatTemplate([{ role: "user", content: "  Hi!\n" }], { addGenerationPrompt: true });
  assert.equal(
    text,
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>" +
      "<|start_header_id|>assistant<|end_header_id|>\n\n",
  );
  // encodePrompt does not add a second BOS on top of the template's.
  const ids = encodePrompt(tok, "  Hi!\n");
  assert.deepEqual(ids, tok.encode(text, { addSpecialTokens: false }));
  assert.equal(ids.filter((id) => id === tok.bosTokenId).length, 1);
});

test("Zephyr (TinyLlama-Chat) template renders the expected string", () => {
  const tok = loadTokenizer(fixture("tok-tinyllama"));
  assert.equal(
    tok.applyChatTemplate(CONVERSATION, { addGenerationPrompt: true }),
    "<|system|>\nBe brief.</s>\n<|user|>\nHi!</s>\n<|assistant|>\nHello.</s>\n<|user|>\nBye</s>\n<|assistant|>\n",
  );
});

test("built-in byte tokenizer: ids are the UTF-8 bytes, BOS added, specials after 255", () => {
  const tok = byteTokenizer();
  assert.equal(tok.vocabSize, BYTE_TOKENIZER_VOCAB_SIZE);
  assert.deepEqual(tok.encode("hé😀"), [256, ...Buffer.from("hé😀", "utf8")]);
  assert.equal(tok.bosTokenId, 256);
  assert.deepEqual(tok.eosTokenIds, [257]);
  for (const text of EDGE_TEXTS)
    assert.equal(tok.decode(tok.encode(text, { addSpecialTokens: false })), text);
  // A cut-off UTF-8 sequence decodes to the replacement character, never throws.
  assert.equal(tok.decode([104, 0xc3]), "h\ufffd");
  // Ids beyond the tokenizer's vocabulary (a model's padded rows) decode to nothing.
  assert.equal(tok.decode([104, 5000, 105]), "hi");
  assert.equal(tok.chatTemplate, undefined);
  assert.deepEqual(encodePrompt(tok, "a"), [256, 97]);
  assert.throws(() => tok.applyChatTemplate([], { addGenerationPrompt: true }), DnoError);
});

test("built-in byte tokenizer saves as a standard tokenizer.json that loads back identically", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-tok-"));
  const template = "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}";
  saveTokenizer(byteTokenizer({ chatTemplate: template }), dir);
  const loaded = loadTokenizer(dir);
  assert.deepEqual(loaded.encode("ünïcödé 🎉"), byteTokenizer().encode("ünïcödé 🎉"));
  assert.equal(
    loaded.applyChatTemplate([{ role: "user", content: "x" }], { addGenerationPrompt: false }),
    "user: x\n",
  );
  const table = byteToUnicode();
  assert.equal(new Set(table).size, 256);
  assert.equal(loaded.idToToken(32), "Ġ");
  assert.equal(loaded.idToToken(258), "<pad>");
});

test("generation_config.json eos ids join the tokenizer's eos", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-tok-"));
  saveTokenizer(byteTokenizer(), dir);
  writeFileSync(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [257, 258] }));
  assert.deepEqual(loadTokenizer(dir).eosTokenIds, [257, 258]);
});

test("bad tokenizer files fail with one DnoError naming the file", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-tok-"));
  assert.throws(
    () => loadTokenizer(dir),
    (e: unknown) => e instanceof DnoError && e.message.includes("tokenizer.json: cannot read"),
  );
  writeFileSync(join(dir, "tokenizer.json"), "{ nope");
  assert.throws(
    () => loadTokenizer(dir),
    (e: unknown) => e instanceof DnoError && e.message.includes("tokenizer.json: invalid JSON"),
  );
  saveTokenizer(byteTokenizer(), dir);
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "<nope>" }));
  assert.throws(
    () => loadTokenizer(dir),
    (e: unknown) => e instanceof DnoError && /tokenizer_config\.json: eos_token: "<nope>"/.test(e.message),
  );
  writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ chat_template: "{% for x in %}" }));
  assert.throws(
    () => loadTokenizer(dir),
    (e: unknown) => e instanceof DnoError && e.message.includes("chat_template"),
  );
});
