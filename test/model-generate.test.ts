import assert from "node:assert/strict";
import { test } from "node:test";
import { engine } from "../src/engine/index.js";
import { generate } from "../src/model/generate.js";
import { byteTokenizer } from "../src/model/tokenizer.js";
import { DnoError } from "../src/util/errors.js";
import { type RandomModel, randomModel, TINY_CONFIGS } from "./model-random.js";

const PROMPTS = [
  [256, 72, 105, 33],
  [256, 120],
  [256, 1, 2, 3, 4, 5, 6, 7, 8],
];

/** The engine's full forward: the last-row logits of every prefix prompt ++ tokens[:t], t = 0..n-1. */
function fullForwardLogits(m: RandomModel, prompt: number[], tokens: number[]): Float32Array[] {
  const V = m.config.vocabSize;
  const seqs = tokens.map((_, t) => [...prompt, ...tokens.slice(0, t)]);
  const flat = Int32Array.from(seqs.flat());
  const starts = new Int32Array(seqs.length + 1);
  seqs.forEach((s, i) => {
    starts[i + 1] = starts[i]! + s.length;
  });
  const last = new Float32Array(seqs.length * V);
  const model = new (engine().Model)(m.config, m.params, null);
  model.forward(
    flat,
    starts,
    new Int32Array(flat.length).fill(-1),
    new Float32Array(flat.length),
    false,
    last,
  );
  return seqs.map((_, i) => last.subarray(i * V, (i + 1) * V));
}

function logSoftmax(logits: Float32Array, token: number): number {
  let mx = -Infinity;
  for (const x of logits) mx = Math.max(mx, x);
  let z = 0;
  for (const x of logits) z += Math.exp(x - mx);
  return logits[token]! - mx - Math.log(z);
}

for (const [name, hf] of Object.entries(TINY_CONFIGS)) {
  test(`${name}: KV-cache decoding gives the full forward's logits at every step`, async () => {
    const m = randomModel(hf, 11);
    const out = await generate(m, PROMPTS, {
      samplesPerPrompt: 2,
      temperature: 1,
      maxNewTokens: 12,
      eosTokenIds: [],
      seed: 5,
      returnLogits: true,
    });
    let worst = 0;
    PROMPTS.forEach((prompt, p) => {
      for (const sample of out[p]!) {
        assert.equal(sample.tokens.length, 12);
        const reference = fullForwardLogits(m, prompt, sample.tokens);
        let logprob = 0;
        sample.logits!.forEach((logits, t) => {
          const ref = reference[t]!;
          let scale = 0;
          for (const x of ref) scale = Math.max(scale, Math.abs(x));
          for (let v = 0; v < ref.length; v++)
            worst = Math.max(worst, Math.abs(logits[v]! - ref[v]!) / scale);
          logprob += logSoftmax(ref, sample.tokens[t]!);
        });
        assert.ok(Math.abs(sample.logprob - logprob) < 1e-3, `logprob ${sample.logprob} vs ${logprob}`);
      }
    });
    assert.ok(worst < 1e-4, `worst relative logit error ${worst}`);
  });
}

test("the same seed gives the same samples whatever the batch composition", async () => {
  const m = randomModel(TINY_CONFIGS.gqa!, 3);
  const options = {
    samplesPerPrompt: 3,
    temperature: 0.9,
    topP: 0.95,
    topK: 40,
    maxNewTokens: 10,
    eosTokenIds: [],
    seed: 42,
  };
  const together = await generate(m, PROMPTS, options);
  const onePromptPerBatch = await generate(m, PROMPTS, { ...options, maxBatchSamples: 3 });
  const oneSamplePerBatch = await generate(m, PROMPTS, { ...options, maxBatchSamples: 1 });
  assert.deepEqual(onePromptPerBatch, together);
  assert.deepEqual(oneSamplePerBatch, together);
  // Samples of one prompt differ from each other, and another seed gives other samples.
  assert.notDeepEqual(together[0]![0]!.tokens, together[0]![1]!.tokens);
  const other = await generate(m, PROMPTS, { ...options, seed: 43 });
  assert.notDeepEqual(other[0]![0]!.tokens, together[0]![0]!.tokens);
});

test("temperature 0 and top-k 1 are greedy; EOS ends a sample without being part of it", async () => {
  const m = randomModel(TINY_CONFIGS.plain!, 8);
  const base = { samplesPerPrompt: 2, maxNewTokens: 8, eosTokenIds: [], seed: 1, returnLogits: true };
  const greedy = await generate(m, PROMPTS, { ...base, temperature: 0 });
  const topOne = await generate(m, PROMPTS, { ...base, temperature: 1.5, topK: 1 });
  assert.deepEqual(
    topOne.map((ss) => ss.map((s) => s.tokens)),
    greedy.map((ss) => ss.map((s) => s.tokens)),
  );
  for (const s of greedy.flat()) {
    s.logits!.forEach((logits, t) => {
      assert.equal(s.tokens[t], logits.indexOf(Math.max(...logits)));
    });
  }
  const eos = greedy[0]![0]!.tokens[3]!;
  const stopped = await generate(m, [PROMPTS[0]!], { ...base, temperature: 0, eosTokenIds: [eos] });
  const firstEos = greedy[0]![0]!.tokens.indexOf(eos);
  assert.deepEqual(stopped[0]![0]!.tokens, greedy[0]![0]!.tokens.slice(0, firstEos));
  assert.equal(stopped[0]![0]!.finishReason, "eos");
  assert.equal(greedy[0]![0]!.finishReason, "length");
});

test("top-k and top-p keep draws inside their candidate sets; draws follow the softmax", async () => {
  const m = randomModel(TINY_CONFIGS.plain!, 9);
  const prompt = [PROMPTS[0]!];
  const n = 3000;
  const base = { samplesPerPrompt: n, temperature: 1, maxNewTokens: 1, eosTokenIds: [], seed: 3 };
  const [ref] = fullForwardLogits(m, PROMPTS[0]!, [0]);
  const probs = Array.from(ref!, (_, v) => Math.exp(logSoftmax(ref!, v)));
  const order = probs.map((_, v) => v).sort((a, b) => probs[b]! - probs[a]!);
  const counts = new Map<number, number>();
  for (const s of (await generate(m, prompt, base))[0]!)
    counts.set(s.tokens[0]!, (counts.get(s.tokens[0]!) ?? 0) + 1);
  for (const v of order.slice(0, 5)) {
    const freq = (counts.get(v) ?? 0) / n;
    assert.ok(
      Math.abs(freq - probs[v]!) < 4 * Math.sqrt(probs[v]! / n) + 1e-3,
      `token ${v}: ${freq} vs ${probs[v]}`,
    );
  }
  const topK = await generate(m, prompt, { ...base, samplesPerPrompt: 300, topK: 3 });
  for (const s of topK[0]!) assert.ok(order.slice(0, 3).includes(s.tokens[0]!));
  // A small nucleus, and one larger than the 64-token head the sampler sorts first.
  for (const topP of [0.5, 0.995]) {
    let mass = 0;
    let nucleus = 0;
    while (mass < topP) mass += probs[order[nucleus++]!]!;
    if (topP > 0.9) assert.ok(nucleus > 64, `nucleus of ${nucleus} tokens`);
    const drawn = await generate(m, prompt, { ...base, samplesPerPrompt: 300, topP });
    for (const s of drawn[0]!) assert.ok(order.slice(0, nucleus).includes(s.tokens[0]!));
  }
});

test("stop strings cut the text before them and the tokens after the one completing them", async () => {
  const m = randomModel(TINY_CONFIGS.plain!, 4);
  const tokenizer = byteTokenizer();
  const base = { samplesPerPrompt: 1, temperature: 0, maxNewTokens: 12, eosTokenIds: [], seed: 1, tokenizer };
  const prompt = [[256, 65, 66]];
  const free = (await generate(m, prompt, base))[0]![0]!;
  const text = tokenizer.decode(free.tokens);
  assert.equal(free.text, text);
  // Two decodable characters after the first one become the stop string.
  const plain = (i: number) => text[i] !== "\ufffd" && text[i + 1] !== "\ufffd" && i + 1 < text.length;
  let at = 1;
  while (at < text.length && !plain(at)) at++;
  if (!plain(at)) return assert.fail(`no stop string candidate in ${JSON.stringify(text)}`);
  const stop = text.slice(at, at + 2);
  const cut = (await generate(m, prompt, { ...base, stopStrings: [stop, "never appears"] }))[0]![0]!;
  assert.equal(cut.finishReason, "stop");
  assert.equal(cut.text, text.slice(0, text.indexOf(stop)));
  assert.ok(tokenizer.decode(cut.tokens).includes(stop));
  assert.ok(
    !tokenizer.decode(cut.tokens.slice(0, -1)).includes(stop),
    "the last token completes the stop string",
  );
  assert.deepEqual(cut.tokens, free.tokens.slice(0, cut.tokens.length));
});

test("bad generate options fail with a DnoError naming the option", async () => {
  const m = randomModel(TINY_CONFIGS.plain!, 1);
  const base = { samplesPerPrompt: 1, temperature: 1, maxNewTokens: 4, eosTokenIds: [], seed: 1 };
  await assert.rejects(
    generate(m, [[]], base),
    (e: unknown) => e instanceof DnoError && /prompts\[0\] is empty/.test(e.message),
  );
  await assert.rejects(
    generate(m, [[999]], base),
    (e: unknown) => e instanceof DnoError && /outside the vocabulary/.test(e.message),
  );
  await assert.rejects(
    generate(m, [[1]], { ...base, topP: 0 }),
    (e: unknown) => e instanceof DnoError && /topP/.test(e.message),
  );
  await assert.rejects(
    generate(m, [[1]], { ...base, stopStrings: ["x"] }),
    (e: unknown) => e instanceof DnoError && /tokenizer/.test(e.message),
  );
});

test("prompts longer than one prefill chunk (512 rows) decode as the full forward does", async () => {
  const m = randomModel(TINY_CONFIGS.gqa!, 12);
  const prompts = [300, 600].map((n, p) => Array.from({ length: n }, (_, i) => (i * 37 + p * 11) % 256));
  const out = await generate(m, prompts, {
    samplesPerPrompt: 1,
    temperature: 1,
    maxNewTokens: 3,
    eosTokenIds: [],
    seed: 2,
    returnLogits: true,
  });
  prompts.forEach((prompt, p) => {
    const sample = out[p]![0]!;
    const reference = fullForwardLogits(m, prompt, sample.tokens);
    sample.logits!.forEach((logits, t) => {
      const ref = reference[t]!;
      const scale = Math.max(...Array.from(ref, Math.abs));
      for (let v = 0; v < ref.length; v++)
        assert.ok(Math.abs(logits[v]! - ref[v]!) < 1e-4 * scale, `p ${p} t ${t}`);
    });
  });
});
