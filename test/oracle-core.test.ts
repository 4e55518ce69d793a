import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  createOracle,
  JudgmentCache,
  linkPreference,
  parseOracleConfig,
  programmaticOracle,
  winRateEstimates,
  winRatesFromScores,
} from "../src/oracle/index.js";
import { Limiter, retryAfterMs } from "../src/oracle/reliability.js";
import { parsePairwiseVerdict, parsePointwiseAnswer } from "../src/oracle/verdicts.js";
import { DnoError } from "../src/util/errors.js";

const sigmoid = { kind: "sigmoid", scale: 1 } as const;

test("links and win-rate matrices", () => {
  assert.equal(linkPreference(sigmoid, 2, 2), 0.5);
  assert.ok(Math.abs(linkPreference(sigmoid, 3, 1) - 1 / (1 + Math.exp(-2))) < 1e-12);
  assert.ok(Math.abs(linkPreference({ kind: "sigmoid", scale: 2 }, 3, 1) - 1 / (1 + Math.exp(-1))) < 1e-12);
  assert.deepEqual(
    [5, 4, 4].map((s) => linkPreference({ kind: "step" }, s, 4)),
    [1, 0.5, 0.5],
  );
  const m = winRatesFromScores([6, null, 4], { kind: "step" });
  assert.deepEqual(m, [
    [0.5, null, 1],
    [null, 0.5, null],
    [0, null, 0.5],
  ]);
  assert.deepEqual(winRateEstimates(m), [1, null, 0]);
});

test("programmatic oracle: native score, derived preference; native prefer, derived win rates", async () => {
  const byLength = programmaticOracle({ score: (_p, cs) => cs.map((c) => c.length) }, { kind: "step" });
  assert.equal(byLength.mode, "pointwise");
  assert.deepEqual(await byLength.score("x", ["aa", "a", "aaa"]), { scores: [2, 1, 3] });
  assert.equal(await byLength.prefer("x", "aaa", "a"), 1);
  assert.equal(await byLength.prefer("x", "a", "b"), 0.5);

  const longer = programmaticOracle({ prefer: (_p, a, b) => (a.length > b.length ? 0.9 : 0.1) }, sigmoid);
  assert.equal(longer.mode, "pairwise");
  const r = await longer.score("x", ["a", "aa", "aaa"]);
  // r(y_i) = mean over j != i of P(y_i > y_j), each unordered pair judged once.
  assert.deepEqual(
    r.scores.map((s) => Number(s!.toFixed(6))),
    [0.1, 0.5, 0.9],
  );
  assert.equal(longer.usage().calls, 3);
});

test("programmatic oracle: a throw or an out-of-contract value is a failure, never a label", async () => {
  const oracle = programmaticOracle(
    {
      prefer: (_p, a) => {
        if (a === "boom") throw new Error("kaput");
        return a === "nan" ? Number.NaN : 1.5;
      },
    },
    sigmoid,
  );
  assert.deepEqual(await oracle.compare("x", "boom", "b"), {
    preference: null,
    failed: "prefer() threw: kaput",
  });
  assert.equal(await oracle.prefer("x", "nan", "b"), null);
  assert.equal(await oracle.prefer("x", "c", "b"), null);
  const scored = programmaticOracle({ score: () => [1] }, sigmoid);
  const r = await scored.score("x", ["a", "b"]);
  assert.deepEqual(r.scores, [null, null]);
  assert.match(r.failed!, /must return 2 numbers/);
  assert.equal(oracle.usage().failures, 3);
});

test("createOracle loads a programmatic module relative to the config", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-oracle-"));
  writeFileSync(
    join(dir, "judge.mjs"),
    "export function score(prompt, cs) { return cs.map((c) => c.split('!').length); }\n",
  );
  const config = parseOracleConfig({ kind: "programmatic", module: "judge.mjs" }, "judge.yaml");
  const oracle = await createOracle(config, { baseDir: dir });
  assert.deepEqual((await oracle.score("p", ["a!", "b"])).scores, [2, 1]);
  writeFileSync(join(dir, "empty.mjs"), "export const x = 1;\n");
  await assert.rejects(
    createOracle(parseOracleConfig({ kind: "programmatic", module: "empty.mjs" }, "j"), { baseDir: dir }),
    /empty\.mjs: the module must export a prefer/,
  );
  await assert.rejects(
    createOracle(parseOracleConfig({ kind: "programmatic", module: "nope.mjs" }, "j"), { baseDir: dir }),
    /nope\.mjs: programmatic oracle module not found/,
  );
});

test("oracle config errors name the file and the field", () => {
  assert.throws(
    () =>
      parseOracleConfig(
        { kind: "llm-judge", baseUrl: "http://x/v1", model: "m", concurrency: 0 },
        "judge.yaml",
      ),
    (e: Error) => e instanceof DnoError && /^judge\.yaml: concurrency: /.test(e.message),
  );
  assert.throws(
    () =>
      parseOracleConfig(
        { kind: "llm-judge", baseUrl: "http://x/v1", model: "m", temprature: 0 },
        "judge.yaml",
      ),
    /temprature/,
  );
  assert.throws(() => parseOracleConfig({ kind: "llm-judge", model: "m" }, "j"), /baseUrl/);
  const ok = parseOracleConfig({ kind: "llm-judge", baseUrl: "http://127.0.0.1:8080/v1", model: "m" }, "j");
  assert.equal(ok.kind === "llm-judge" && ok.mode, "pointwise");
});

test("judgment cache survives reopening and rejects a file that is not one", () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-cache-"));
  const file = join(dir, "sub", "cache.sqlite");
  const a = new JudgmentCache(file);
  a.put("k1", "h", { result: { scores: [1, 2] }, raw: "{}", promptTokens: 10, completionTokens: 3 });
  a.close();
  const b = new JudgmentCache(file);
  assert.deepEqual(b.get("k1"), {
    result: { scores: [1, 2] },
    raw: "{}",
    promptTokens: 10,
    completionTokens: 3,
  });
  assert.equal(b.get("k2"), undefined);
  b.close();
  const junk = join(dir, "junk.sqlite");
  writeFileSync(junk, "this is not a database, just some text that is long enough to matter\n".repeat(20));
  assert.throws(() => new JudgmentCache(junk), /junk\.sqlite: cannot open the judgment cache/);
});

test("pairwise verdicts: MT-bench and AlpacaEval styles; conflicts and silence fail", () => {
  assert.equal(parsePairwiseVerdict("A is more accurate.\n[[A]]"), "A");
  assert.equal(parsePairwiseVerdict("Final verdict: [[B]]"), "B");
  assert.equal(parsePairwiseVerdict("They are equal. [[C]]"), "tie");
  assert.equal(parsePairwiseVerdict("Output (b)"), "B");
  assert.equal(
    parsePairwiseVerdict("[{'model': 'model_2', 'rank': 1}, {'model': 'model_1', 'rank': 2}]"),
    "B",
  );
  assert.equal(
    parsePairwiseVerdict('[{"model": "model_1", "rank": 1}, {"model": "model_2", "rank": 2}]'),
    "A",
  );
  assert.equal(parsePairwiseVerdict(" m\n"), "A");
  assert.equal(parsePairwiseVerdict("M"), "B");
  assert.equal(parsePairwiseVerdict("[[A]] ... actually [[B]]"), null);
  assert.equal(parsePairwiseVerdict("Response A is better."), null);
  assert.equal(parsePairwiseVerdict(""), null);
});

test("pointwise answers: fenced JSON is read; missing, unknown, out-of-range and truncated fail", () => {
  const ok = parsePointwiseAnswer(
    '```json\n{"1": {"justification": "ok", "score": 5}, "2": {"score": 3}}\n```',
    ["1", "2"],
    0,
    6,
  );
  assert.ok(typeof ok !== "string");
  assert.deepEqual(
    [...ok.scores],
    [
      ["1", 5],
      ["2", 3],
    ],
  );
  assert.match(parsePointwiseAnswer('{"1": {"score": 5}}', ["1", "2"], 0, 6) as string, /no score for id 2/);
  assert.match(parsePointwiseAnswer('{"1": 5, "2": 4, "3": 1}', ["1", "2"], 0, 6) as string, /unknown ids 3/);
  assert.match(parsePointwiseAnswer('{"1": 7, "2": 4}', ["1", "2"], 0, 6) as string, /integer from 0 to 6/);
  assert.match(parsePointwiseAnswer('{"1": 4.5, "2": 4}', ["1", "2"], 0, 6) as string, /integer/);
  assert.match(
    parsePointwiseAnswer('{"1": {"score": 5}, "2": {"sco', ["1", "2"], 0, 6) as string,
    /invalid JSON|no JSON/,
  );
  assert.match(parsePointwiseAnswer("I think both are fine.", ["1"], 0, 6) as string, /no JSON object/);
});

test("Retry-After: seconds, milliseconds, HTTP date", () => {
  const h = (m: Record<string, string>) => (name: string) => m[name];
  assert.equal(retryAfterMs(h({ "retry-after": "2" })), 2000);
  assert.equal(retryAfterMs(h({ "retry-after": "0.25" })), 250);
  assert.equal(retryAfterMs(h({ "retry-after-ms": "40", "retry-after": "9" })), 40);
  const now = Date.parse("2026-01-01T00:00:00Z");
  assert.equal(retryAfterMs(h({ "retry-after": "Thu, 01 Jan 2026 00:00:03 GMT" }), now), 3000);
  assert.equal(retryAfterMs(h({})), undefined);
  assert.equal(retryAfterMs(h({ "retry-after": "soon" })), undefined);
});

test("Limiter never runs more than its limit at once", async () => {
  const limiter = new Limiter(3);
  let active = 0;
  let peak = 0;
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      limiter.run(async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise((r) => setTimeout(r, (i % 4) + 1));
        active--;
      }),
    ),
  );
  assert.equal(peak, 3);
});
