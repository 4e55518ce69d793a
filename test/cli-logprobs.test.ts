import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../src/model/config.js";
import { CausalLM } from "../src/model/model.js";
import { dnoInProcess } from "./cli-in-process.js";

const CONFIG = parseConfig(
  { vocab_size: 50, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2 },
  "c",
);

test("dno logprobs writes the reference tool's format", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-lp-"));
  const model = CausalLM.init(CONFIG, 4, 0.5);
  model.save(join(dir, "m"));
  const sequences = [[1, 5, 9], [3], [7, 7, 7, 7, 49]];
  writeFileSync(join(dir, "in.json"), JSON.stringify({ sequences }));
  const r = await dnoInProcess([
    "logprobs",
    "--model",
    join(dir, "m"),
    "--input",
    join(dir, "in.json"),
    "--out",
    join(dir, "out.json"),
  ]);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout);
  assert.equal(summary.cmd, "logprobs");
  assert.equal(summary.scored_tokens, 6);
  const out = JSON.parse(readFileSync(join(dir, "out.json"), "utf8"));
  assert.deepEqual(Object.keys(out), ["dtype", "token_logprobs", "last_logits"]);
  assert.deepEqual(
    out.token_logprobs.map((a: number[]) => a.length),
    [2, 0, 4],
  );
  assert.deepEqual(
    out.last_logits.map((a: number[]) => a.length),
    [50, 50, 50],
  );
  const expected = model.tokenLogprobs(sequences);
  assert.deepEqual(
    out.token_logprobs,
    expected.tokenLogprobs.map((a) => Array.from(a)),
  );
  assert.ok(
    Math.abs(summary.sum_logprob - out.token_logprobs.flat().reduce((a: number, b: number) => a + b, 0)) <
      1e-9,
  );
});

test("dno logprobs: bad input is one clear error naming the file and the place", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-lp-"));
  CausalLM.init(CONFIG, 1).save(join(dir, "m"));
  const cases: [unknown, RegExp][] = [
    [
      {
        sequences: [
          [1, 2],
          [3, 50],
        ],
      },
      /in\.json: sequences\[1\]\[1\]: token 50 is outside the model's vocabulary \[0, 50\)/,
    ],
    [{ sequences: [[1, 2], []] }, /in\.json: sequences\[1\]: /],
    [{ seqs: [] }, /in\.json: sequences: /],
  ];
  for (const [input, message] of cases) {
    writeFileSync(join(dir, "in.json"), JSON.stringify(input));
    const r = await dnoInProcess([
      "logprobs",
      "--model",
      join(dir, "m"),
      "--input",
      join(dir, "in.json"),
      "--out",
      join(dir, "o.json"),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  }
  const r = await dnoInProcess([
    "logprobs",
    "--model",
    join(dir, "nope"),
    "--input",
    join(dir, "in.json"),
    "--out",
    join(dir, "o.json"),
  ]);
  assert.equal(r.code, 1);
});
