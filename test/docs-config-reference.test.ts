import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { CONFIG_MEANINGS } from "../src/docs/config-meanings.js";
import { configReferenceRows, withConfigReference } from "../src/docs/config-reference.js";

const README = fileURLToPath(new URL("../../README.md", import.meta.url));

test("README's config reference is the one generated from the schema (npm run docs:config)", () => {
  const text = readFileSync(README, "utf8");
  assert.equal(withConfigReference(text), text, "README.md is stale: run `npm run docs:config`");
});

test("every config key has a type, a default (or says required / none) and a meaning", () => {
  const rows = configReferenceRows();
  for (const r of rows) {
    assert.ok(r.meaning.length > 0, `${r.key}: no .describe() in the schema`);
    assert.ok(r.type.length > 0 && r.default.length > 0, r.key);
  }
  const keys = new Set(rows.map((r) => r.key));
  for (const k of Object.keys(CONFIG_MEANINGS))
    assert.ok(keys.has(k), `config-meanings.ts names ${k}, not in the schema`);
  for (const k of [
    "data.prompts_per_iteration",
    "train.lr_decay",
    "train.warmup_steps",
    "sampling.include_gold",
    "pairs.defects.max_repeat_fraction",
    "oracle.link",
    "task_metrics",
    "guards.stop_on_collapse",
  ]) {
    assert.ok(keys.has(k), k);
  }
});
