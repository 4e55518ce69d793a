import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  aggregatePreferences,
  aggregateScores,
  createOracle,
  ensembleOracle,
  parseOracleConfig,
  programmaticOracle,
} from "../src/oracle/index.js";
import { openRunOracle } from "../src/pipeline/oracle.js";
import { DnoError } from "../src/util/errors.js";

const step = { kind: "step" } as const;
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-12, `${a} != ${b}`);

test("ensemble aggregation: mean, worst case, mean - lambda * variance", () => {
  close(aggregateScores([1, 2, 6], "mean", 1), 3);
  close(aggregateScores([1, 2, 6], "min", 1), 1);
  // population variance of 1, 2, 6 is (4 + 1 + 9) / 3.
  close(aggregateScores([1, 2, 6], "uncertainty", 0.5), 3 - 0.5 * (14 / 3));
  close(aggregatePreferences([0.9, 0.7], "mean", 1), 0.8);
  close(aggregatePreferences([0.9, 0.7], "min", 1), 0.7);
  close(aggregatePreferences([0.1, 0.3], "min", 1), 0.3);
  assert.equal(aggregatePreferences([0.9, 0.3], "min", 1), 0.5);
  // mean 0.8, variance 0.01: the margin 0.3 shrinks by 2 * 0.01; it never crosses 1/2.
  close(aggregatePreferences([0.9, 0.7], "uncertainty", 2), 0.78);
  assert.equal(aggregatePreferences([0.9, 0.1], "uncertainty", 100), 0.5);
  // Every rule keeps P(a > b) = 1 - P(b > a).
  for (const agg of ["mean", "min", "uncertainty"] as const) {
    const ps = [0.8, 0.65, 0.9];
    close(
      aggregatePreferences(ps, agg, 3),
      1 -
        aggregatePreferences(
          ps.map((p) => 1 - p),
          agg,
          3,
        ),
    );
  }
});

test("ensemble: pointwise members aggregate scores; a failed member fails the judgment unless minMembers answer", async () => {
  const length = programmaticOracle({ score: (_p, cs) => cs.map((c) => c.length) }, step);
  const vowels = programmaticOracle(
    { score: (_p, cs) => cs.map((c) => (c.match(/[aeiou]/g) ?? []).length) },
    step,
  );
  const broken = programmaticOracle(
    {
      score: () => {
        throw new Error("down");
      },
    },
    step,
  );
  const both = ensembleOracle([length, vowels], { aggregate: "min", lambda: 1, link: step });
  assert.equal(both.mode, "pointwise");
  assert.deepEqual((await both.score("x", ["aaa", "bcdf"])).scores, [3, 0]);
  assert.equal(await both.prefer("x", "aaa", "bcdf"), 1);

  const strict = ensembleOracle([length, broken], { aggregate: "mean", lambda: 1, link: step });
  const failed = await strict.score("x", ["a", "bb"]);
  assert.deepEqual(failed.scores, [null, null]);
  assert.match(failed.failed!, /1 of 2 members answered, 2 needed.*member 1: score\(\) threw: down/);
  assert.equal(await strict.prefer("x", "a", "bb"), null);

  const fresh = programmaticOracle({ score: (_p, cs) => cs.map((c) => c.length) }, step);
  const down = programmaticOracle({ score: () => Promise.reject(new Error("down")) }, step);
  const lenient = ensembleOracle([fresh, down], { aggregate: "mean", lambda: 1, minMembers: 1, link: step });
  assert.deepEqual((await lenient.score("x", ["a", "bb"])).scores, [1, 2]);
  assert.equal(lenient.usage().calls, 2);
  assert.equal(lenient.usage().failures, 1);
  assert.throws(() => ensembleOracle([length], { aggregate: "mean", lambda: 1, minMembers: 2, link: step }));
});

test("ensemble: a pairwise member makes the ensemble pairwise; preferences aggregate", async () => {
  const longer = programmaticOracle({ prefer: (_p, a, b) => (a.length > b.length ? 0.9 : 0.2) });
  const scored = programmaticOracle({ score: (_p, cs) => cs.map((c) => c.length) }, step);
  const e = ensembleOracle([longer, scored], { aggregate: "mean", lambda: 1, link: step });
  assert.equal(e.mode, "pairwise");
  close((await e.compare("x", "aa", "a")).preference!, (0.9 + 1) / 2);
  const worst = ensembleOracle([longer, scored], { aggregate: "min", lambda: 1, link: step });
  close((await worst.compare("x", "aa", "a")).preference!, 0.9);
  assert.equal((await worst.compare("x", "a", "b")).preference, 0.5); // 0.2 vs 0.5: no agreed side
});

function writeModule(dir: string, name: string, body: string): string {
  const file = join(dir, name);
  writeFileSync(file, body);
  return file;
}

test("ensemble config: members of any kind, errors name the field; createOracle builds it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-ensemble-"));
  const a = writeModule(dir, "a.mjs", "export const score = (_p, cs) => cs.map((c) => c.length);\n");
  const config = parseOracleConfig(
    {
      kind: "ensemble",
      aggregate: "uncertainty",
      lambda: 0.5,
      members: [
        { kind: "programmatic", module: "a.mjs" },
        { kind: "programmatic", module: "a.mjs", link: { kind: "step" } },
      ],
    },
    "ens.yaml",
  );
  const oracle = await createOracle(config, { baseDir: dir });
  assert.deepEqual((await oracle.score("x", ["abc", "a"])).scores, [3, 1]);
  assert.ok(a);
  assert.throws(
    () =>
      parseOracleConfig(
        { kind: "ensemble", members: [{ kind: "programmatic", module: "a.mjs" }], minMembers: 2 },
        "e.yaml",
      ),
    (e: unknown) => e instanceof DnoError && /e\.yaml: .*minMembers/.test(e.message),
  );
  assert.throws(
    () => parseOracleConfig({ kind: "ensemble", members: [{ kind: "nope" }] }, "e.yaml"),
    (e: unknown) => e instanceof DnoError && /members\[0\]/.test(e.message),
  );
});

test("run cache stores ensemble members separately: adding a member pays only for it", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-ensemble-run-"));
  const a = writeModule(
    dir,
    "a.mjs",
    "export const prefer = (_p, a, b) => (a.length > b.length ? 0.8 : 0.3);\n",
  );
  const b = writeModule(dir, "b.mjs", "export const prefer = (_p, a, b) => (a < b ? 0.6 : 0.4);\n");
  const one = parseOracleConfig({ kind: "ensemble", members: [{ kind: "programmatic", module: a }] }, "x");
  const two = parseOracleConfig(
    {
      kind: "ensemble",
      members: [
        { kind: "programmatic", module: a },
        { kind: "programmatic", module: b },
      ],
    },
    "x",
  );
  const first = await openRunOracle(one, dir);
  close((await first.compare("p", "aa", "b"))!, 0.8);
  assert.equal(first.calls(), 1);
  first.close();
  const second = await openRunOracle(two, dir);
  close((await second.compare("p", "aa", "b"))!, (0.8 + 0.6) / 2);
  assert.equal(second.calls(), 1, "only the new member was asked");
  assert.equal(second.paidJudgments(), 2);
  second.close();
  const again = await openRunOracle(two, dir);
  await again.compare("p", "aa", "b");
  assert.equal(again.calls(), 0, "a resumed run pays for nothing twice");
  again.close();
});
