/**
 * Property-based mutation tests of the readers users hand files to: thousands of random mutations of
 * valid safetensors, GGUF, config and JSONL files (bit flips, overwritten bytes and 64-bit lengths,
 * insertions, deletions, truncations). Every outcome must be a clean DnoError or a correct load, never
 * another exception, a hang, or a native abort (which would end this process).
 */
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import { parseConfig } from "../src/model/config.js";
import { exportGguf, ggufSource, parseGguf } from "../src/model/gguf.js";
import { CausalLM } from "../src/model/model.js";
import { SafetensorsReader, writeSafetensors } from "../src/model/safetensors.js";
import { byteTokenizer, loadTokenizer, saveTokenizer } from "../src/model/tokenizer.js";
import { loadRunConfig } from "../src/pipeline/config.js";
import { readPrompts } from "../src/pipeline/data.js";
import { DnoError } from "../src/util/errors.js";
import { TINY_CONFIG, tinyRunInputs } from "./tiny-run.js";

const RUNS = 1500;
/** Config files go through YAML and zod: slower per run. */
const CONFIG_RUNS = 700;
const dir = mkdtempSync(join(tmpdir(), "dno-mutations-"));

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; value: number }
  | { kind: "u64"; at: number; value: bigint }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; length: number }
  | { kind: "truncate"; at: number };

/** Mutations whose positions favour the first `hot` bytes (headers), yet reach the whole file. */
function mutations(hot: number): fc.Arbitrary<Mutation[]> {
  const at = fc.oneof(fc.nat({ max: hot }), fc.nat());
  const one: fc.Arbitrary<Mutation> = fc.oneof(
    fc.record({ kind: fc.constant("flip" as const), at, bit: fc.nat({ max: 7 }) }),
    fc.record({ kind: fc.constant("set" as const), at, value: fc.nat({ max: 255 }) }),
    fc.record({
      kind: fc.constant("u64" as const),
      at,
      value: fc.oneof(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 0n, max: 4096n })),
    }),
    fc.record({
      kind: fc.constant("insert" as const),
      at,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
    fc.record({ kind: fc.constant("delete" as const), at, length: fc.integer({ min: 1, max: 16 }) }),
    fc.record({ kind: fc.constant("truncate" as const), at }),
  );
  return fc.array(one, { minLength: 1, maxLength: 4 });
}

function mutate(original: Uint8Array, ms: readonly Mutation[]): Buffer {
  let b = Buffer.from(original);
  for (const m of ms) {
    const at = b.length === 0 ? 0 : m.at % b.length;
    switch (m.kind) {
      case "flip":
        if (b.length > 0) b[at]! ^= 1 << m.bit;
        break;
      case "set":
        if (b.length > 0) b[at] = m.value;
        break;
      case "u64":
        if (at + 8 <= b.length) b.writeBigUInt64LE(m.value, at);
        break;
      case "insert":
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case "delete":
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
        break;
      case "truncate":
        b = b.subarray(0, at);
        break;
    }
  }
  return b;
}

/** Where a safetensors file's header ends: mutations aim there first. */
const headerEnd = (bytes: Buffer) => 8 + Number(bytes.readBigUInt64LE(0));

/** Runs `f`; a DnoError is a clean refusal (false), success is true, anything else fails the property. */
function cleanly(f: () => void): boolean {
  try {
    f();
    return true;
  } catch (e) {
    if (e instanceof DnoError) return false;
    throw e;
  }
}

const tinyConfig = parseConfig(
  {
    vocab_size: 259,
    hidden_size: 8,
    intermediate_size: 16,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    max_position_embeddings: 16,
    tie_word_embeddings: false,
  },
  "test",
);

test(`safetensors reader: ${RUNS} mutated files, each a clean error or a correct load`, () => {
  const file = join(dir, "m.safetensors");
  writeSafetensors(file, [
    { name: "a", shape: [2, 3], data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
    { name: "b", shape: [4], data: Float32Array.from([0.5, -1, 2, 8]) },
  ]);
  writeSafetensors(
    join(dir, "h.safetensors"),
    [{ name: "c", shape: [3], data: Float32Array.from([1, 2, 3]) }],
    "BF16",
  );
  const originals = [readFileSync(file), readFileSync(join(dir, "h.safetensors"))];
  let loads = 0;
  fc.assert(
    fc.property(fc.nat({ max: 1 }), mutations(headerEnd(originals[0]!)), (which, ms) => {
      const path = join(dir, "mutated.safetensors");
      writeFileSync(path, mutate(originals[which]!, ms));
      const ok = cleanly(() => {
        const r = new SafetensorsReader(path);
        try {
          // A correct load: byte ranges tile the data exactly, every tensor reads at its declared size.
          const size = readFileSync(path).length;
          const ranges = [...r.entries.values()].sort((x, y) => x.begin - y.begin);
          let end = ranges[0]?.begin ?? size;
          for (const e of ranges) {
            assert.equal(e.begin, end);
            end = e.end;
            const numel = e.shape.reduce((p, d) => p * d, 1);
            assert.equal(r.read(e.name).length, numel);
          }
          assert.equal(end, size);
        } finally {
          r.close();
        }
      });
      if (ok) loads++;
    }),
    { numRuns: RUNS, seed: 17 },
  );
  assert.ok(loads > 0, "some mutations (data bytes) still load");
});

test(`GGUF reader: ${RUNS} mutated files, each a clean error or a correct load`, () => {
  const model = CausalLM.init(tinyConfig, 3);
  const path = join(dir, "m.gguf");
  exportGguf(path, ggufSource(model.config, model.params), byteTokenizer(), { dtype: "f16" });
  const original = readFileSync(path);
  fc.assert(
    fc.property(mutations(parseGguf(original, path).dataOffset), (ms) => {
      const bytes = mutate(original, ms);
      cleanly(() => {
        const g = parseGguf(bytes, "mutated.gguf");
        for (const [name, t] of g.tensors) {
          cleanly(() =>
            assert.equal(
              g.read(name).length,
              t.dims.reduce((p, d) => p * d, 1),
            ),
          );
        }
      });
    }),
    { numRuns: RUNS, seed: 23 },
  );
});

test(`run config: ${2 * CONFIG_RUNS} mutated YAML texts and values, each a clean error or a valid config`, () => {
  const inputs = tinyRunInputs();
  const file = join(inputs, "dno.yaml");
  const original = Buffer.from(TINY_CONFIG);
  fc.assert(
    fc.property(mutations(TINY_CONFIG.length), (ms) => {
      writeFileSync(file, mutate(original, ms));
      cleanly(() => {
        const c = loadRunConfig(file);
        assert.ok(c.iterations >= 1 && c.sampling.max_new_tokens >= 1);
      });
    }),
    { numRuns: CONFIG_RUNS, seed: 29 },
  );
  // Any JSON value in place of a field, at any depth the config has.
  const fields = [
    "seed",
    "iterations",
    "sampling",
    "sampling.max_new_tokens",
    "model",
    "model.from_scratch.hidden_size",
    "oracle",
    "train.lr",
    "pairs.replay",
    "data",
  ];
  fc.assert(
    fc.property(fc.constantFrom(...fields), fc.jsonValue(), (field, value) => {
      const yaml = `${TINY_CONFIG}\n`;
      const path = field.split(".");
      writeFileSync(
        file,
        `${yaml.replace(new RegExp(`^${path[0]}:.*$`, "m"), "")}${path[0]}: ${JSON.stringify(nest(path.slice(1), value))}\n`,
      );
      cleanly(() => loadRunConfig(file));
    }),
    { numRuns: CONFIG_RUNS, seed: 31 },
  );
});

function nest(path: string[], value: unknown): unknown {
  return path.length === 0 ? value : { [path[0]!]: nest(path.slice(1), value) };
}

test(`JSONL reader: ${RUNS} mutated prompt files, each a clean error or well-formed rows`, () => {
  const inputs = tinyRunInputs();
  const original = readFileSync(join(inputs, "prompts.jsonl"));
  const file = join(dir, "p.jsonl");
  fc.assert(
    fc.property(mutations(original.length), (ms) => {
      writeFileSync(file, mutate(original, ms));
      cleanly(() => {
        const rows = readPrompts(file);
        assert.ok(rows.length > 0);
        assert.equal(new Set(rows.map((r) => r.id)).size, rows.length);
        for (const r of rows) assert.ok(typeof r.id === "string" && typeof r.prompt === "string");
      });
    }),
    { numRuns: RUNS, seed: 37 },
  );
});

test("tokenizers: 400 tokenizer.json files with a part replaced load cleanly (and encode) or are refused", () => {
  const source = fileURLToPath(new URL("../../test/fixtures/tok-tinyllama", import.meta.url));
  const tokDir = join(dir, "tokenizer");
  cpSync(source, tokDir, { recursive: true });
  const original = JSON.parse(readFileSync(join(source, "tokenizer.json"), "utf8")) as Record<
    string,
    unknown
  >;
  const parts = [
    "model",
    "normalizer",
    "pre_tokenizer",
    "decoder",
    "added_tokens",
    "post_processor",
    "model.vocab",
    "model.type",
    "model.merges",
    "model.unk_token",
  ];
  fc.assert(
    fc.property(fc.constantFrom(...parts), fc.jsonValue(), (part, value) => {
      const json = structuredClone(original);
      const path = part.split(".");
      let at = json;
      for (const key of path.slice(0, -1)) at = at[key] as Record<string, unknown>;
      at[path[path.length - 1]!] = value;
      writeFileSync(join(tokDir, "tokenizer.json"), JSON.stringify(json));
      cleanly(() => {
        const tokenizer = loadTokenizer(tokDir);
        tokenizer.decode(tokenizer.encode("Hello, world: 12 + 30 = 42"));
      });
    }),
    { numRuns: 400, seed: 43 },
  );
});

test("model directories: mutated weights and config.json load cleanly or are refused; a forward never aborts", () => {
  const modelDir = join(dir, "model");
  CausalLM.init(tinyConfig, 5).save(modelDir);
  saveTokenizer(byteTokenizer(), modelDir);
  const weights = readFileSync(join(modelDir, "model.safetensors"));
  const config = JSON.parse(readFileSync(join(modelDir, "config.json"), "utf8")) as Record<string, unknown>;
  const numbers = [
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "vocab_size",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_theta",
    "head_dim",
  ];
  fc.assert(
    fc.property(
      mutations(headerEnd(weights)),
      fc.option(
        fc.tuple(
          fc.constantFrom(...numbers),
          fc.oneof(fc.integer({ min: -4, max: 70 }), fc.double(), fc.constant(null)),
        ),
      ),
      (ms, field) => {
        const dirK = join(dir, "mut-model");
        CausalLM.init(tinyConfig, 5).save(dirK);
        writeFileSync(join(dirK, "model.safetensors"), mutate(weights, ms));
        writeFileSync(
          join(dirK, "config.json"),
          JSON.stringify(field ? { ...config, [field[0]]: field[1] } : config),
        );
        cleanly(() => {
          const m = CausalLM.load(dirK);
          const { tokenLogprobs } = m.tokenLogprobs([[1, 2, 3]]);
          // Huge finite weights may still overflow; the commands refuse non-finite outputs (corpus).
          assert.equal(tokenLogprobs[0]!.length, 2);
        });
      },
    ),
    { numRuns: 200, seed: 41 },
  );
});
