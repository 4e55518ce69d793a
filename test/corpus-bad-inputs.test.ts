/**
 * The bad-input corpus (corpus-cases.ts), run through the CLI's own entry point in this process: each
 * case must exit with its code, print exactly one line, `dno: error: ...` matching its pattern, and
 * leave every file of its folder byte-identical, creating none.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { dnoInProcess } from "./cli-in-process.js";
import { CORPUS } from "./corpus-cases.js";
import { freshFixture } from "./corpus-fixtures.js";
import { snapshot } from "./tiny-run.js";

test(`the bad-input corpus: ${CORPUS.length} cases, one clear error each, nothing changed`, async (t) => {
  const counts: Record<string, number> = {};
  for (const c of CORPUS) counts[c.surface] = (counts[c.surface] ?? 0) + 1;
  t.diagnostic(`cases by surface: ${JSON.stringify(counts)}`);
  assert.ok(CORPUS.length >= 80, `${CORPUS.length} cases`);
  for (const c of CORPUS) {
    await t.test(`${c.surface}: ${c.name}`, async () => {
      const dir = await freshFixture(c.fixture);
      const args = c.setup(dir);
      const before = snapshot(dir);
      const r = await dnoInProcess(args);
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(r.code, c.code ?? 1, r.stderr);
      assert.equal(lines.length, 1, `one line: ${r.stderr}`);
      assert.match(lines[0]!, /^dno: error: /);
      assert.match(lines[0]!.slice("dno: error: ".length), c.error);
      assert.deepEqual(snapshot(dir), before, "every file as it was, none added");
    });
  }
});
