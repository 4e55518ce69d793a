import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { judgeAll } from "../src/oracle/batch.js";
import {
  createOracle,
  defaultTemplates,
  type OracleConfigInput,
  parseOracleConfig,
} from "../src/oracle/index.js";
import { DnoError } from "../src/util/errors.js";
import { startFakeJudge } from "./oracle-fake-judge.js";

const KEY = "sk-fake-judge-7f3a9c2e51";

function judgeConfig(baseUrl: string, extra: Partial<Record<string, unknown>> = {}) {
  const config: OracleConfigInput = {
    kind: "llm-judge",
    baseUrl,
    model: "fake-judge",
    apiKeyEnv: "DNO_FAKE_JUDGE_KEY",
    concurrency: 3,
    // Well above a loaded machine's latency for normal answers; only the "slow" fault reaches it.
    timeoutMs: 1000,
    maxRetries: 2,
    retryBaseMs: 5,
    retryMaxMs: 20,
    ...extra,
  } as OracleConfigInput;
  return parseOracleConfig(config, "test config");
}
const env = { DNO_FAKE_JUDGE_KEY: KEY };

/** Four candidates with qualities derived from the item index, so the truth is known. */
function item(i: number, fault = "") {
  const qs = [(i * 5) % 7, (i * 3 + 1) % 7, (i + 4) % 7, (i * 2 + 3) % 7];
  return {
    id: `item-${i}`,
    prompt: `Question ${i}.${fault ? ` fault=${fault}` : ""}`,
    candidates: qs.map((q, k) => `Candidate ${k} for question ${i}: q=${q}`),
    truth: qs,
  };
}

test("pointwise judge under injected faults: every judgment right or counted failed", async () => {
  const judge = await startFakeJudge({ key: KEY });
  const cache = join(mkdtempSync(join(tmpdir(), "dno-judge-")), "cache.sqlite");
  try {
    // maxRetries 2: a fault on the first two attempts is survived, a persistent one is not.
    const survivable = ["429x2", "500x1", "slowx1", "resetx2", "ratelimitx1"];
    const fatalToItem = ["500", "slow", "reset", "garbage", "partial", "bodycut", "length", "echo"];
    const items = [
      ...Array.from({ length: 14 }, (_, i) => item(i)),
      ...survivable.map((f, j) => item(100 + j, f)),
      ...fatalToItem.map((f, j) => item(200 + j, f)),
    ];
    const oracle = await createOracle(judgeConfig(judge.baseUrl, { cache }), { env });
    const rows = await judgeAll(oracle, items, { parallelItems: 8 });
    const usage = oracle.usage();
    oracle.close();

    rows.forEach((row, n) => {
      const it = items[n]!;
      assert.equal(row.id, it.id);
      if (n < 14 + survivable.length) {
        assert.equal(row.failed, null, `${it.id} (${it.prompt}) should succeed: ${row.failed}`);
        assert.deepEqual(row.scores, it.truth, it.id);
      } else {
        assert.ok(row.failed, `${it.id} (${it.prompt}) must be failed`);
        assert.deepEqual(row.scores, [null, null, null, null]);
        assert.ok(row.win_rate.every((r, i) => r.every((p, j) => (i === j ? p === 0.5 : p === null))));
      }
    });
    const reason = (fault: string) => rows[14 + survivable.length + fatalToItem.indexOf(fault)]!.failed!;
    assert.match(reason("500"), /HTTP 500.*gave up after 3 attempts/);
    assert.match(reason("slow"), /timed out after 1000 ms/);
    assert.match(reason("reset"), /connection error/);
    assert.match(reason("garbage"), /unparseable judgment: no JSON object/);
    assert.match(reason("partial"), /unparseable judgment/);
    assert.match(reason("bodycut"), /malformed response/);
    assert.match(reason("length"), /cut at maxTokens/);
    assert.match(reason("echo"), /HTTP 400/);
    assert.ok(!reason("echo").includes(KEY), "the key echoed by the server is redacted");

    // Retry-After: 1 was honoured: the retry came a second after the 429.
    const limited = judge.requests.filter((r) => r.tag === "ratelimit");
    assert.equal(limited.length, 2);
    assert.ok(limited[1]!.at - limited[0]!.at >= 950, `retry after ${limited[1]!.at - limited[0]!.at} ms`);

    assert.equal(usage.calls, judge.requests.length);
    assert.equal(usage.promptTokens, judge.promptTokens);
    assert.equal(usage.completionTokens, judge.completionTokens);
    assert.equal(usage.failures, fatalToItem.length);
    assert.ok(judge.authorizations.every((a) => a === `Bearer ${KEY}`));

    // The seeded shuffle showed candidates out of their input order, and the scores were mapped back.
    const clean = judge.shownOrders.slice(0, 14);
    assert.ok(clean.some((shown, i) => shown.join() !== items[i]?.truth.join()));

    // Restart on the same cache: nothing that succeeded is asked again.
    const before = judge.requests.length;
    // No retries this time: only what failed is asked again, once.
    const again = await createOracle(judgeConfig(judge.baseUrl, { cache, maxRetries: 0 }), { env });
    const rows2 = await judgeAll(again, items, { parallelItems: 8 });
    const usage2 = again.usage();
    again.close();
    const asked = new Set(judge.requests.slice(before).map((r) => r.question));
    for (const it of items.slice(0, 14 + survivable.length))
      assert.ok(!asked.has(it.prompt), `${it.id} paid twice`);
    assert.equal(usage2.cacheHits, 14 + survivable.length);
    rows2.forEach((row, n) => {
      if (row.failed === null) assert.deepEqual(row.scores, items[n]!.truth);
      else assert.deepEqual(row.scores, [null, null, null, null]);
    });
    assert.deepEqual(rows2.slice(0, 19), rows.slice(0, 19));
  } finally {
    await judge.close();
  }
});

test("concurrency never goes above the limit, across items and within a pairwise matrix", async () => {
  // No request here is abandoned by the client (a timed-out request stays open at the server a moment
  // after the client has let go of its slot, which the server would count as overlap).
  const judge = await startFakeJudge({ delayMs: 3 });
  try {
    const faults = ["429x1", "500x1", "resetx1", "garbage"];
    const items = Array.from({ length: 30 }, (_, i) => item(i, faults[i % 6] ?? ""));
    const pointwise = await createOracle(judgeConfig(judge.baseUrl, { apiKeyEnv: undefined }));
    const rows = await judgeAll(pointwise, items, { parallelItems: 10 });
    pointwise.close();
    assert.ok(judge.maxInFlight <= 3, `peak concurrency ${judge.maxInFlight}`);
    assert.equal(judge.maxInFlight, 3, "the limit was reached, so the bound was tested");
    rows.forEach((row, i) => {
      if (i % 6 === 3) assert.ok(row.failed);
      else assert.deepEqual(row.scores, items[i]!.truth);
    });

    judge.maxInFlight = 0;
    const pairwise = await createOracle(
      judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, mode: "pairwise", concurrency: 2 }),
    );
    await judgeAll(pairwise, [item(1), item(2)], { parallelItems: 1 });
    pairwise.close();
    assert.equal(judge.maxInFlight, 2);
  } finally {
    await judge.close();
  }
});

test("the candidate order shown depends on the seed only", async () => {
  const judge = await startFakeJudge();
  try {
    const items = Array.from({ length: 6 }, (_, i) => item(i));
    const orders = async (seed: number) => {
      const oracle = await createOracle(judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, seed }), { env });
      const start = judge.shownOrders.length;
      for (const it of items) await oracle.score(it.prompt, it.candidates);
      oracle.close();
      return judge.shownOrders.slice(start);
    };
    const a = await orders(1);
    assert.deepEqual(await orders(1), a);
    assert.notDeepEqual(await orders(2), a);
  } finally {
    await judge.close();
  }
});

test("pairwise judge: both orders asked, inconsistent verdicts are ties, failures are null", async () => {
  const judge = await startFakeJudge({ key: KEY });
  try {
    const oracle = await createOracle(judgeConfig(judge.baseUrl, { mode: "pairwise" }), { env });
    assert.equal(oracle.mode, "pairwise");
    assert.equal(await oracle.prefer("Which?", "x q=5", "y q=2"), 1);
    assert.equal(judge.requests.length, 2, "one request per order");
    assert.equal(await oracle.prefer("Which?", "y q=2", "x q=5"), 0);
    assert.equal(judge.requests.length, 2, "the swapped comparison reuses both cached judgments");
    assert.equal(await oracle.prefer("Which?", "x q=3", "y q=3"), 0.5);
    // A judge that always picks the first position: A in one order, B in the other -> a tie.
    assert.equal(await oracle.prefer("Which? fault=biasA", "x q=5", "y q=2"), 0.5);
    const failed = await oracle.compare("Which? fault=garbage", "x q=5", "y q=2");
    assert.equal(failed.preference, null);
    assert.match(failed.failed!, /unparseable judgment: no single verdict/);

    const [row] = await judgeAll(
      oracle,
      [{ id: 1, prompt: "Rank", candidates: ["a q=1", "b q=4", "c q=2"] }],
      {
        parallelItems: 1,
      },
    );
    assert.deepEqual(row!.win_rate, [
      [0.5, 0, 0],
      [1, 0.5, 1],
      [1, 0, 0.5],
    ]);
    assert.deepEqual(row!.scores, [0, 1, 0.5]);
    assert.equal(row!.preference, undefined);
    const [two] = await judgeAll(oracle, [{ id: 2, prompt: "Two", candidates: ["a q=1", "b q=4"] }], {
      parallelItems: 1,
    });
    assert.equal(two!.preference, 0);
    oracle.close();
  } finally {
    await judge.close();
  }
});

test("a budget stops the run cleanly and a resumed run pays only for the rest", async () => {
  const judge = await startFakeJudge();
  const cache = join(mkdtempSync(join(tmpdir(), "dno-budget-")), "cache.sqlite");
  try {
    const items = Array.from({ length: 10 }, (_, i) => item(i));
    const small = await createOracle(
      judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, cache, concurrency: 1, budget: { maxCalls: 4 } }),
    );
    const rows = await judgeAll(small, items, { parallelItems: 1 });
    const usage = small.usage();
    small.close();
    assert.equal(usage.calls, 4);
    assert.equal(judge.requests.length, 4);
    assert.ok(usage.budgetExhausted);
    assert.deepEqual(
      rows.map((r) => r.failed === null),
      [true, true, true, true, false, false, false, false, false, false],
    );
    assert.match(rows[4]!.failed!, /budget exhausted/);
    assert.deepEqual(rows[9]!.scores, [null, null, null, null]);

    const big = await createOracle(judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, cache }));
    const rows2 = await judgeAll(big, items, { parallelItems: 4 });
    assert.equal(big.usage().calls, 6);
    assert.equal(big.usage().cacheHits, 4);
    big.close();
    for (const [i, r] of rows2.entries()) assert.deepEqual(r.scores, items[i]!.truth);

    // A token budget: stops once the tokens reported reach it.
    const tokens = await createOracle(
      judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, concurrency: 1, seed: 9, budget: { maxTokens: 1 } }),
    );
    const rows3 = await judgeAll(tokens, items, { parallelItems: 1 });
    assert.equal(tokens.usage().calls, 1);
    assert.equal(rows3.filter((r) => r.failed === null).length, 1);
    tokens.close();
  } finally {
    await judge.close();
  }
});

test("a wrong key stops the run with one error naming the variable, never the key", async () => {
  const judge = await startFakeJudge({ key: KEY });
  try {
    const wrong = "sk-wrong-key-000111222";
    const oracle = await createOracle(judgeConfig(judge.baseUrl), { env: { DNO_FAKE_JUDGE_KEY: wrong } });
    await assert.rejects(
      judgeAll(oracle, [item(1), item(2)], { parallelItems: 2 }),
      (e: Error) =>
        e instanceof DnoError && /DNO_FAKE_JUDGE_KEY/.test(e.message) && !e.message.includes(wrong),
    );
    oracle.close();
    await assert.rejects(
      createOracle(judgeConfig(judge.baseUrl), { env: {} }),
      /DNO_FAKE_JUDGE_KEY is not set/,
    );
  } finally {
    await judge.close();
  }
});

test("an edited jinja template is what the judge sees, and is a different cache key", async () => {
  const judge = await startFakeJudge();
  const dir = mkdtempSync(join(tmpdir(), "dno-tpl-"));
  const cache = join(dir, "cache.sqlite");
  try {
    const it = item(3);
    const plain = await createOracle(judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, cache }));
    assert.deepEqual((await plain.score(it.prompt, it.candidates)).scores, it.truth);
    plain.close();
    writeFileSync(join(dir, "strict.jinja"), `Be strict.\n${defaultTemplates.pointwise}`);
    const edited = await createOracle(
      judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, cache, templates: { pointwise: "strict.jinja" } }),
      { baseDir: dir },
    );
    assert.deepEqual((await edited.score(it.prompt, it.candidates)).scores, it.truth);
    assert.equal(edited.usage().calls, 1, "not answered from the default template's cache entry");
    edited.close();
    assert.equal(judge.requests.length, 2);
    assert.equal(judge.requests[1]!.firstLine, "Be strict.");

    writeFileSync(join(dir, "bad.jinja"), "{% for x in %}");
    const bad = judgeConfig(judge.baseUrl, { apiKeyEnv: undefined, templates: { pairwise: "bad.jinja" } });
    await assert.rejects(createOracle(bad, { baseDir: dir }), /bad\.jinja: invalid jinja template/);
  } finally {
    await judge.close();
  }
});
