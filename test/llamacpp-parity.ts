/**
 * llama.cpp (node-llama-cpp's prebuilt CPU binary) against our engine on one GGUF: teacher-forced on our
 * greedy continuation, llama.cpp must pick the same token at every step and give the same top-5
 * probabilities (ranks may swap only between near-equal probabilities).
 */
import assert from "node:assert/strict";
import { type ControlledEvaluateInputItem, getLlama, type Llama, type Token } from "node-llama-cpp";
import type { Sample } from "../src/model/generate.js";

let llama: Promise<Llama> | undefined;
const getCpuLlama = () => {
  llama ??= getLlama({ gpu: false, build: "never", logLevel: "error" as never });
  return llama;
};

function softmax(logits: Float32Array): number[] {
  let mx = -Infinity;
  for (const x of logits) mx = Math.max(mx, x);
  const e = Array.from(logits, (x) => Math.exp(x - mx));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

/**
 * `ours` is our greedy sample after `prompt` with its logits (generate's returnLogits); `lora` a llama.cpp
 * adapter GGUF loaded on the context; `tol` the probability tolerance.
 */
export async function assertLlamaCppParity(
  modelPath: string,
  prompt: number[],
  ours: Sample,
  tol: number,
  lora?: string,
): Promise<void> {
  const model = await (await getCpuLlama()).loadModel({ modelPath });
  // One thread: ggml's spinning threads crawl on a loaded machine.
  const context = await model.createContext({ contextSize: 64, batchSize: 64, threads: 1, lora });
  try {
    const input = [...prompt, ...ours.tokens.slice(0, -1)];
    const first = prompt.length - 1;
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
    for (let t = 0; t < ours.tokens.length; t++) {
      const theirs = [...evaluated[first + t]!.next.probabilities!.entries()];
      const mine = softmax(ours.logits![t]!);
      const mineTop = mine
        .map((p, id) => [id, p] as const)
        .sort((a, b) => b[1] - a[1])
        .slice(0, 5);
      assert.equal(theirs[0]![0], ours.tokens[t], `step ${t}: greedy token`);
      for (let r = 0; r < 5; r++) {
        const [id, p] = mineTop[r]!;
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
}
