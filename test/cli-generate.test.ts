import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../src/model/config.js";
import { readGguf } from "../src/model/gguf.js";
import { CausalLM } from "../src/model/model.js";
import { byteTokenizer, saveTokenizer } from "../src/model/tokenizer.js";
import { dnoInProcess } from "./cli-in-process.js";

const TEMPLATE =
  "{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}";

function modelDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "dno-cli-gen-"));
  const config = parseConfig(
    { vocab_size: 259, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2 },
    "test",
  );
  CausalLM.init(config, 1, 0.3).save(dir);
  saveTokenizer(byteTokenizer({ chatTemplate: TEMPLATE }), dir);
  return dir;
}

/** Runs the CLI in this process; its exit code (its output is captured and dropped). */
const dno = async (...args: string[]) => (await dnoInProcess(args)).code;

test("dno generate writes K responses per prompt, the same for the same seed", async () => {
  const dir = modelDir();
  const input = join(dir, "prompts.jsonl");
  writeFileSync(input, '{"id":"a","prompt":"hi"}\n\n{"messages":[{"role":"user","content":"yo"}]}\n');
  const run = async (out: string) => {
    const args = ["generate", "--model", dir, "--input", input, "--output", out, "-k", "3"];
    assert.equal(await dno(...args, "--max-new-tokens", "8", "--seed", "4"), 0);
    return readFileSync(out, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
  };
  const rows = await run(join(dir, "a.jsonl"));
  assert.equal(rows.length, 2);
  assert.equal(rows[0].id, "a");
  assert.equal(rows[1].id, 1);
  for (const row of rows) {
    assert.equal(row.responses.length, 3);
    for (const r of row.responses) {
      assert.ok(r.tokens.length <= 8 && typeof r.text === "string" && r.logprob <= 0);
      assert.ok(["eos", "length"].includes(r.finish_reason));
    }
  }
  assert.deepEqual(await run(join(dir, "b.jsonl")), rows);
});

test("dno generate rejects a bad prompt line with file:line", async () => {
  const dir = modelDir();
  const input = join(dir, "bad.jsonl");
  writeFileSync(input, '{"prompt":"ok"}\n{"prompt":3}\n');
  const r = await dnoInProcess(["generate", "--model", dir, "--input", input, "--output", join(dir, "o")]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /bad\.jsonl:2: prompt/);
});

test("dno export --format gguf writes a llama GGUF with the tokenizer and chat template", async () => {
  const dir = modelDir();
  const out = join(dir, "m.gguf");
  assert.equal(await dno("export", "--model", dir, "--format", "gguf", "--output", out, "--dtype", "f32"), 0);
  const g = readGguf(out);
  assert.equal(g.metadata.get("general.architecture"), "llama");
  assert.equal(g.metadata.get("tokenizer.chat_template"), TEMPLATE);
  assert.equal(g.tensors.size, 2 + 2 * 9 + 1);
});
