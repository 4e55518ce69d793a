/**
 * Parity with llama.cpp (through node-llama-cpp's prebuilt binary): our GGUF export of random tiny
 * checkpoints, run by llama.cpp, continues greedily as we do and ranks the same top-5 tokens with the
 * same probabilities at every step.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { generate } from "../src/model/generate.js";
import { exportGguf, ggufSource } from "../src/model/gguf.js";
import { byteTokenizer } from "../src/model/tokenizer.js";
import { assertLlamaCppParity } from "./llamacpp-parity.js";
import { randomModel, TINY_CONFIGS } from "./model-random.js";

const PROMPT = [256, 84, 104, 101, 32];
const STEPS = 12;

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
    await assertLlamaCppParity(path, PROMPT, ours, dtype === "f32" ? 2e-4 : 5e-3);
  });
}
