import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parse as parseYaml } from "yaml";
import { runCompare } from "../src/demo/compare.js";
import { demoConfig } from "../src/demo/demo.js";

test("dno compare: variants share the first variant's SFT policy and land in one table", async () => {
  const out = mkdtempSync(join(tmpdir(), "dno-compare-"));
  const demo = demoConfig();
  // A shrunken demo: one short SFT epoch, one iteration on few prompts.
  const small = {
    iterations: 1,
    sft: { ...demo.sft!, epochs: 1 },
    data: { ...demo.data, prompts_per_iteration: 40 },
    eval: { samples_per_prompt: 1, temperature: 1, top_p: 1, mixture: true },
  };
  const { rows, markdown } = await runCompare(out, ["dno", "spin"], {}, small);

  // dno's run also reports Algorithm 1's output, the mixture of its iterates, as a row of its own.
  assert.deepEqual(
    rows.map((r) => r.variant),
    ["dno", "dno-mixture", "spin"],
  );
  for (const r of rows) {
    assert.ok(r.winrate_vs_teacher !== null && r.winrate_vs_teacher >= 0 && r.winrate_vs_teacher <= 1);
    assert.ok(r.accuracy !== null && r.accuracy >= 0 && r.accuracy <= 1);
  }
  assert.equal(markdown.trim().split("\n").length, 5, markdown);
  assert.deepEqual(JSON.parse(readFileSync(join(out, "compare.json"), "utf8")), rows);
  assert.equal(readFileSync(join(out, "compare.md"), "utf8"), markdown);

  // SPIN starts from DNO's pi_1 (no SFT of its own) and trains with its own objective.
  const spin = parseYaml(readFileSync(join(out, "spin", "dno.yaml"), "utf8")) as {
    sft?: unknown;
    model: { path?: string };
    objective: { name: string };
  };
  assert.equal(spin.sft, undefined);
  assert.match(String(spin.model.path), /dno/);
  assert.equal(spin.objective.name, "spin");
  assert.ok(existsSync(join(out, "spin", "summary.json")));
});
