/**
 * A response's text is decoded as a continuation of its prompt (prompt text + response text = the
 * decoded whole), as vLLM and llama.cpp do, and encoded back the same way: checked on a real
 * SentencePiece-style model (shared/models/babyllama-105), whose decoder drops a sequence's leading space.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { generate } from "../src/model/generate.js";
import { CausalLM } from "../src/model/model.js";
import { byteTokenizer, decodeResponse, encodeResponse, loadTokenizer } from "../src/model/tokenizer.js";
import { findShared } from "../src/util/shared-dir.js";

const MODEL = findShared("models/babyllama-105");
const skip = MODEL === undefined ? "shared/models/babyllama-105 is not beside the repository" : false;
if (skip) console.log(`# SKIP model-decode-response: ${skip}`);

test("a SentencePiece response keeps the space between prompt and response", { skip }, () => {
  const tok = loadTokenizer(MODEL!);
  const prompt = tok.encode("The little dog");
  const whole = tok.encode("The little dog was very sad");
  assert.deepEqual(whole.slice(0, prompt.length), prompt);
  const response = whole.slice(prompt.length);
  // Decoded alone, the response loses its leading space; as a continuation it keeps it.
  assert.equal(tok.decode(response), "was very sad");
  assert.equal(decodeResponse(tok, prompt, response), " was very sad");
  assert.deepEqual(encodeResponse(tok, prompt, " was very sad"), response);
  for (const text of [" was very sad", "s ran.", "  Once", " ", "—é…"]) {
    assert.equal(decodeResponse(tok, prompt, encodeResponse(tok, prompt, text)), text, JSON.stringify(text));
  }
});

test("the byte-level tokenizer decodes a response as before", () => {
  const tok = byteTokenizer();
  const prompt = tok.encode("rev abc=");
  for (const text of ["cba", " cba", "[cba]", "héllo"]) {
    const ids = tok.encode(text, { addSpecialTokens: false });
    assert.deepEqual(encodeResponse(tok, prompt, text), ids);
    assert.equal(decodeResponse(tok, prompt, ids), text);
  }
  // A character split between the prompt's last byte and the response's first belongs to the response.
  const e = tok.encode("é", { addSpecialTokens: false });
  assert.equal(decodeResponse(tok, [...prompt, e[0]!], [e[1]!]), "é");
});

test("generate: prompt text + response text = the decoded whole, stop strings included", {
  skip,
}, async () => {
  const tok = loadTokenizer(MODEL!);
  const model = CausalLM.load(MODEL!);
  const prompts = ["The little dog", "Once upon a time"].map((p) => tok.encode(p));
  const base = {
    samplesPerPrompt: 3,
    temperature: 1,
    maxNewTokens: 24,
    eosTokenIds: tok.eosTokenIds,
    seed: 5,
  };
  const out = await generate(model, prompts, { ...base, tokenizer: tok });
  prompts.forEach((prompt, p) => {
    for (const s of out[p]!) {
      assert.equal(tok.decode(prompt) + s.text, tok.decode([...prompt, ...s.tokens]));
    }
  });
  const greedy = (await generate(model, [prompts[0]!], { ...base, temperature: 0, tokenizer: tok }))[0]![0]!;
  assert.match(greedy.text!, /^ \S/, "a greedy continuation of 'The little dog' starts with a space");
  // A stop string right after the prompt: the text before it is empty, not the first word without its space.
  const firstWord = greedy.text!.split(" ")[1]!;
  const stopped = (
    await generate(model, [prompts[0]!], {
      ...base,
      temperature: 0,
      tokenizer: tok,
      stopStrings: [firstWord],
    })
  )[0]![0]!;
  assert.equal(stopped.finishReason, "stop");
  assert.equal(stopped.text, " ");
});
