/**
 * Parity with llama.cpp (through node-llama-cpp's prebuilt binary): our GGUF export of random tiny
 * checkpoints, run by llama.cpp, continues greedily as we do and ranks the same top-5 tokens with the
 * same probabilities at every step.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { type ControlledEvaluateInputItem, getLlama, type Llama, type Token } from "node-llama-cpp";
import { generate } from "../src/model/generate.js";
import { exportGguf, ggufSource } from "../src/model/gguf.js";
import { byteTokenizer } from "../src/model/tokenizer.js";
import { randomModel, TINY_CONFIGS } from "./model-random.js";

let llama: Promise<Llama> | undefined;
const getCpuLlama = () => {
  llama ??= getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  return llama;
};

const PROMPT = [256, 84, 104, 101, 32];
const STEPS = 12;

function softmax(logits: Float32Array): number[] {
  let mx = -Infinity;
  for (const x of logits) mx = Math.max(mx, x);
  const e = Array.from(logits, (x) => Math.exp(x - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

const CASES = [
  ["plain", "f32"],
  ["plain", "f16"],
  ["gqa", "f32"],
  ["tied", "f32"],
  ["qwen2", "f16"],
  ["llama3rope", "f32"],
] as const;

for (const [name, dtype] of CASES) {
  test(`llama.cpp runs our ${dtype} GGUF of a ${name} checkpoint: same greedy tokens, same top-5`, async () => {
    const m = randomModel(TINY_CONFIGS[name]!, 21);
    const path = join(mkdtempSync(join(tmpdir(), "dno-llamacpp-")), "m.gguf");
    exportGguf(path, ggufSource(m.config, m.params), byteTokenizer(), { dtype });
    const ours = (
      await generate(m, [PROMPT], {
        samplesPerPrompt: 1,
        temperature: 0,
        maxNewTokens: STEPS,
        eosTokenIds: [],
        seed: 0,
        returnLogits: true,
      })
    )[0]![0]!;

    const model = await (await getCpuLlama()).loadModel({ modelPath: path });
    // One thread: ggml's spinning threads crawl on a loaded machine.
    const context = await model.createContext({ contextSize: 64, batchSize: 64, threads: 1 });
    try {
      // Teacher-forced on our continuation: llama.cpp's next-token distribution after each prefix.
      const input = [...PROMPT, ...ours.tokens.slice(0, -1)];
      const first = PROMPT.length - 1;
      const evaluated = await context.getSequence().controlledEvaluate(
        input.map((id, i): ControlledEvaluateInputItem => {
          const token = id as Token;
          return i < first
            ? token
            : [
                token,
                {
                  generateNext: {
                    probabilities: true,
                    options: { temperature: 1, topK: 0, topP: 1, minP: 0 },
                  },
                },
              ];
        }),
      );
      const tol = dtype === "f32" ? 2e-4 : 5e-3;
      for (let t = 0; t < STEPS; t++) {
        const theirs = [...evaluated[first + t]!.next.probabilities!.entries()];
        const mine = softmax(ours.logits![t]!);
        const mineTop = mine
          .map((p, id) => [id, p] as const)
          .sort((a, b) => b[1] - a[1])
          .slice(0, 5);
        assert.equal(theirs[0]![0], ours.tokens[t], `step ${t}: greedy token`);
        for (let r = 0; r < 5; r++) {
          const [id, p] = mineTop[r]!;
          // Ranks may swap only between near-equal probabilities.
          const tied = Math.abs(p - theirs[r]![1]) < tol;
          assert.ok(theirs[r]![0] === id || tied, `step ${t} rank ${r}: ${theirs[r]![0]} vs ${id}`);
          const theirP = theirs.find(([tid]) => tid === id)?.[1] ?? 0;
          assert.ok(Math.abs(theirP - p) < tol, `step ${t} token ${id}: p ${theirP} vs ${p}`);
        }
      }
    } finally {
      await context.dispose();
      await model.dispose();
    }
  });
}
