import assert from "node:assert/strict";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { createOracle, parseOracleConfig } from "../src/oracle/index.js";

const KEY = "rm-secret-93c1f0aa";

/** Rewards are the `q=N` in each response; the first request is a 503 with Retry-After: 0. */
async function startRewardServer() {
  const seen: { responses: string[]; auth: string }[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
      prompt: string;
      responses: string[];
    };
    seen.push({ responses: body.responses, auth: String(req.headers.authorization) });
    res.setHeader("content-type", "application/json");
    if (seen.length === 1) {
      res.writeHead(503, { "retry-after": "0" });
      return res.end("{}");
    }
    if (body.prompt.includes("broken")) return res.end('{"scores": [1, ');
    res.end(JSON.stringify({ scores: body.responses.map((r) => Number(/q=(-?\d+)/.exec(r)?.[1])) }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/score`;
  return { url, seen, close: () => new Promise<void>((r) => server.close(() => r())) };
}

test("reward-model oracle: P = sigmoid(r(a) - r(b)), rewards cached per response, failures null", async () => {
  const rm = await startRewardServer();
  const dir = mkdtempSync(join(tmpdir(), "dno-rm-"));
  try {
    const config = parseOracleConfig(
      { kind: "reward-model", url: rm.url, apiKeyEnv: "RM_KEY", cache: "rewards.sqlite", retryBaseMs: 1 },
      "rm.yaml",
    );
    const oracle = await createOracle(config, { baseDir: dir, env: { RM_KEY: KEY } });
    assert.equal(oracle.mode, "pointwise");
    assert.deepEqual(await oracle.score("p", ["a q=3", "b q=1", "c q=-2"]), { scores: [3, 1, -2] });
    assert.equal(oracle.usage().retries, 1);
    const requests = rm.seen.length;
    assert.equal(await oracle.prefer("p", "a q=3", "c q=-2"), 1 / (1 + Math.exp(-5)));
    assert.equal(rm.seen.length, requests, "both rewards came from the cache");
    const broken = await oracle.score("broken", ["a q=1"]);
    assert.deepEqual(broken.scores, [null]);
    assert.match(broken.failed!, /unparseable reward answer/);
    assert.ok(rm.seen.every((s) => s.auth === `Bearer ${KEY}`));
    oracle.close();
    assert.ok(!readFileSync(join(dir, "rewards.sqlite")).includes(KEY));

    const reopened = await createOracle(config, { baseDir: dir, env: { RM_KEY: KEY } });
    assert.deepEqual((await reopened.score("p", ["b q=1", "a q=3"])).scores, [1, 3]);
    assert.equal(reopened.usage().calls, 0);
    reopened.close();
  } finally {
    await rm.close();
  }
});
