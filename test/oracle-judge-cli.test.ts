import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { defaultTemplates } from "../src/oracle/index.js";
import { startFakeJudge } from "./oracle-fake-judge.js";

const BIN = fileURLToPath(new URL("../../bin/dno.js", import.meta.url));
const KEY = "sk-cli-secret-4b1d0e9a77";

function dno(args: string[], env: Record<string, string>, cwd: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd, env: { ...process.env, ...env } },
      (error, stdout, stderr) => {
        resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

test("dno judge: output lines, summary, resume without paying twice, and no key in any file or log", async () => {
  const judge = await startFakeJudge({ key: KEY });
  const dir = mkdtempSync(join(tmpdir(), "dno-judge-cli-"));
  try {
    writeFileSync(
      join(dir, "judge.yaml"),
      [
        "kind: llm-judge",
        `baseUrl: ${judge.baseUrl}`,
        "model: fake-judge",
        "apiKeyEnv: DNO_CLI_JUDGE_KEY",
        "cache: cache.sqlite",
        "timeoutMs: 5000",
        "retryBaseMs: 5",
        "",
      ].join("\n"),
    );
    const lines = [
      { id: "a", prompt: "First?", candidates: ["x q=2", "y q=6", "z q=4"], gold_index: 1 },
      { id: "b", prompt: "Second?", candidates: ["x q=5", "y q=1"] },
      { id: "c", prompt: "Third? fault=echo", candidates: ["x q=5", "y q=1"] },
    ];
    writeFileSync(join(dir, "in.jsonl"), lines.map((l) => JSON.stringify(l)).join("\n"));
    const env = { DNO_CLI_JUDGE_KEY: KEY };
    const args = [
      "judge",
      "--config",
      "judge.yaml",
      "--input",
      "in.jsonl",
      "--output",
      "out.jsonl",
      "--json",
    ];
    // One failed item of three passes the default --max-failed 0.05: exit 1, the output written anyway.
    const first = await dno(args, env, dir);
    assert.equal(first.code, 1, first.stderr);
    assert.match(
      first.stderr,
      /dno: error: in\.jsonl: 1 of 3 judgments failed, more than --max-failed 0\.05/,
    );
    const out = readFileSync(join(dir, "out.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.deepEqual(out[0].scores, [2, 6, 4]);
    assert.equal(out[0].gold_index, 1);
    assert.equal(out[0].failed, null);
    assert.equal(out[0].win_rate[1][0], 1 / (1 + Math.exp(-4)));
    assert.deepEqual(out[1].scores, [5, 1]);
    assert.deepEqual(out[2].scores, [null, null]);
    assert.match(out[2].failed, /HTTP 400/);
    const summary = JSON.parse(first.stdout);
    assert.deepEqual(
      [summary.items, summary.failed_items, summary.calls, summary.cache_hits, summary.budget_exhausted],
      [3, 1, 3, 0, false],
    );
    assert.equal(summary.prompt_tokens, judge.promptTokens);
    assert.match(first.stderr, /judged 3 items, 1 failed/);

    args.push("--max-failed", "0.5");
    const second = await dno(args, env, dir);
    assert.equal(second.code, 0, second.stderr);
    const again = JSON.parse(second.stdout);
    assert.equal(again.cache_hits, 2);
    assert.equal(again.calls, 1, "only the failed item is asked again");

    // Pairwise by flag, two candidates: a preference per line.
    const pairwise = await dno([...args, "--mode", "pairwise", "--output", "pairs.jsonl"], env, dir);
    assert.equal(pairwise.code, 0, pairwise.stderr);
    const pairs = readFileSync(join(dir, "pairs.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    assert.equal(pairs[1].preference, 1);
    assert.equal(pairs[2].preference, null);
    assert.deepEqual(pairs[0].scores, [0, 1, 0.5]);

    // The key reached the server, yet no file written and no output holds it.
    assert.ok(judge.authorizations.includes(`Bearer ${KEY}`));
    const logs = [first, second, pairwise].map((r) => r.stdout + r.stderr).join("");
    assert.ok(!logs.includes(KEY), "key in the command's output");
    const files = readdirSync(dir);
    assert.ok(files.includes("cache.sqlite"));
    for (const f of files) {
      assert.ok(!readFileSync(join(dir, f)).includes(KEY), `key written to ${f}`);
    }
  } finally {
    await judge.close();
  }
});

test("dno judge: bad input and bad config are one clear error each; --write-templates writes the defaults", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-judge-cli-"));
  writeFileSync(
    join(dir, "judge.yaml"),
    "kind: llm-judge\nbaseUrl: http://127.0.0.1:9/v1\nmodel: m\nconcurrency: 0\n",
  );
  writeFileSync(
    join(dir, "in.jsonl"),
    '{"id": 1, "prompt": "p", "candidates": ["a"]}\n{"id": 2, "prompt": "p"}\n',
  );
  const args = ["judge", "--config", "judge.yaml", "--input", "in.jsonl", "--output", "out.jsonl"];
  const badConfig = await dno(args, {}, dir);
  assert.equal(badConfig.code, 1);
  assert.match(badConfig.stderr, /^dno: error: judge\.yaml: concurrency: /);
  const badInput = await dno([...args, "--concurrency", "2"], {}, dir);
  assert.equal(badInput.code, 1);
  assert.match(badInput.stderr, /^dno: error: in\.jsonl:2: candidates: /);
  const gold = await dno(
    ["judge", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--input", "g.jsonl", "--output", "o"],
    {},
    dir,
  );
  assert.match(gold.stderr, /g\.jsonl: cannot read/);
  const written = await dno(["judge", "--write-templates", "tpl"], {}, dir);
  assert.equal(written.code, 0, written.stderr);
  assert.equal(readFileSync(join(dir, "tpl", "pointwise.jinja"), "utf8"), defaultTemplates.pointwise);
  assert.equal(readFileSync(join(dir, "tpl", "pairwise.jinja"), "utf8"), defaultTemplates.pairwise);
});
