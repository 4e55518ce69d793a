import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { byteTokenizer, encodePrompt } from "../src/model/tokenizer.js";
import { encodePromptText, loadPolicy, tokenSequenceLogprobs } from "../src/pipeline/policy.js";
import { BIN, endsWithin, killRunWhen, setupRun } from "./run-fixture.js";

/**
 * A faulty network in front of `dno serve`: it starts the server on a free port and forwards to it,
 * but answers the first attempt of some requests with 503 (Retry-After), 429, or a dropped connection,
 * and every request for the prompt in FAIL_PROMPT with 500. It counts what it injected in faults.log.
 */
const PROXY = `import { spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { createServer } from "node:http";
const [port, ...command] = process.argv.slice(2);
const inner = await new Promise((resolve) => {
  const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => resolve(p)); });
});
const child = spawn(command[0], [...command.slice(1), "--port", String(inner)], { stdio: "inherit" });
child.on("exit", (code) => process.exit(code ?? 1));
const seen = new Map();
const log = (what) => appendFileSync(new URL("./faults.log", import.meta.url), what + "\\n");
createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    const body = Buffer.concat(chunks).toString();
    const n = (seen.get(body) ?? 0) + 1;
    seen.set(body, n);
    if (req.method === "POST") {
      const prompt = JSON.stringify(JSON.parse(body).prompt);
      if (prompt === process.env.FAIL_PROMPT) {
        log("500");
        res.writeHead(500, { "content-type": "application/json" });
        return res.end('{"error":{"message":"injected","type":"server_error"}}');
      }
      const h = [...body].reduce((s, ch) => (s * 31 + ch.charCodeAt(0)) % 1000003, 7) % 4;
      if (n === 1 && h === 0) {
        log("503");
        res.writeHead(503, { "retry-after": "0" });
        return res.end();
      }
      if (n === 1 && h === 1) {
        log("429");
        res.writeHead(429, { "retry-after-ms": "5", "content-type": "application/json" });
        return res.end('{"error":{"message":"slow down","type":"rate_limit_error"}}');
      }
      if (n === 1 && h === 2) {
        log("drop");
        return req.socket.destroy();
      }
    }
    try {
      const r = await fetch("http://127.0.0.1:" + inner + req.url, {
        method: req.method,
        headers: { "content-type": "application/json" },
        ...(req.method === "POST" && { body }),
      });
      res.writeHead(r.status, { "content-type": r.headers.get("content-type") ?? "application/json" });
      res.end(Buffer.from(await r.arrayBuffer()));
    } catch {
      res.writeHead(502);
      res.end();
    }
  });
}).listen(Number(port), "127.0.0.1");
`;

const config = (bin: string) => `seed: 4
run_dir: run
model: { from_scratch: { hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 32 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 1 }
data: { prompts: prompts.jsonl, eval: eval.jsonl, prompts_per_iteration: 12 }
oracle: { kind: programmatic, module: oracle.mjs }
iterations: 2
sampling: { samples_per_prompt: 3, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 }
train: { lr: 0.003, batch_size: 4 }
eval: { samples_per_prompt: 1 }
sampler:
  kind: openai
  baseUrl: http://127.0.0.1:{port}/v1
  model: policy
  concurrency: 4
  maxRetries: 3
  retryBaseMs: 5
  retryMaxMs: 20
  launch:
    command: node proxy.mjs {port} node ${JSON.stringify(bin).slice(1, -1)} serve --model {policy} --served-model-name policy
    readyTimeoutMs: 60000
`;

/** A run directory whose sampler is `dno serve` behind the faulty proxy; one prompt always fails. */
function setup(): { dir: string; env: NodeJS.ProcessEnv; failing: string } {
  const dir = setupRun(config(BIN), "dno-remote-");
  writeFileSync(join(dir, "proxy.mjs"), PROXY);
  const first = JSON.parse(readFileSync(join(dir, "prompts.jsonl"), "utf8").split("\n")[0]!) as {
    prompt: string;
  };
  const ids = encodePrompt(byteTokenizer(), first.prompt);
  return { dir, env: { ...process.env, FAIL_PROMPT: JSON.stringify(ids) }, failing: first.prompt };
}

const finalHash = (stdout: string) => /final weights sha256 ([0-9a-f]{64})/.exec(stdout)?.[1];

function run(
  dir: string,
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, "run", "--config", "dno.yaml"], { cwd: dir, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

let reference: { dir: string; hash: string } | undefined;
async function uninterrupted() {
  if (!reference) {
    const { dir, env } = setup();
    const r = await run(dir, env);
    assert.equal(r.code, 0, r.stderr);
    reference = { dir, hash: finalHash(r.stdout)! };
  }
  return reference;
}

test("a run samples through a launched dno serve behind faults: retried, failed samples never candidates", async () => {
  const { dir } = await uninterrupted();
  const faults = readFileSync(join(dir, "faults.log"), "utf8").trim().split("\n");
  for (const kind of ["500", "503", "429", "drop"]) assert.ok(faults.includes(kind), `injected ${kind}`);
  const { failing } = setup();
  const rows = (f: string) =>
    readFileSync(join(dir, "run", f), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
  let failedRows = 0;
  for (const t of [1, 2]) {
    const samples = rows(`iterations/${t}/samples.jsonl`);
    const annotations = new Map(rows(`iterations/${t}/annotations.jsonl`).map((a) => [a.id, a]));
    for (const s of samples) {
      const candidates = annotations.get(s.id).candidates.map((c: { id: string }) => c.id);
      if (s.prompt === failing) {
        failedRows++;
        assert.deepEqual(s.samples, [null, null, null]);
        assert.deepEqual(candidates, ["gold"], "a failed sample is never a candidate");
      } else {
        // Token-exact: the ids are the ones the server drew, their log-prob under pi_t is the one it reported.
        const policy = loadPolicy(join(dir, "run", `checkpoints/pi_${t}`));
        const lp = tokenSequenceLogprobs(
          policy,
          s.samples.map((x: { tokens: number[] }) => ({
            prompt: encodePromptText(policy, s.prompt),
            response: x.tokens,
          })),
        );
        s.samples.forEach((x: { logprob: number; tokens: number[]; text: string }, k: number) => {
          assert.ok(Math.abs(lp[k]! - x.logprob) < 1e-3, `${lp[k]} vs ${x.logprob}`);
          assert.equal(x.text, policy.tokenizer.decode(x.tokens));
        });
        assert.deepEqual(candidates, ["s0", "s1", "s2", "gold"]);
      }
    }
  }
  assert.equal(failedRows, 1, "the failing prompt was in one iteration's partition");
  assert.ok(!existsSync(join(dir, "run/serve/server.pid")), "every launched server was stopped");
});

test("kill -9 of the run mid-sampling: its server dies with it; a resume ends with the same weights", async () => {
  const ref = await uninterrupted();
  const { dir, env } = setup();
  // 1/sample's server is up and answering: kill the run in the middle of the stage.
  const log = join(dir, "run/serve/1-sample.log");
  await killRunWhen(
    dir,
    env,
    () => existsSync(log) && readFileSync(log, "utf8").includes("dno serve: policy at"),
  );
  const serverPid = Number(readFileSync(join(dir, "run/serve/server.pid"), "utf8"));
  assert.ok(await endsWithin(serverPid, 20_000), "the server outlived the killed run");
  const resumed = await run(dir, env);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(finalHash(resumed.stdout), ref.hash);
});

test("a sampler server that never gets ready fails the stage with one clear error", async () => {
  const dir = setupRun(
    config(BIN)
      .replace(/command: .*\n/, "command: sleep 30\n")
      .replace("readyTimeoutMs: 60000", "readyTimeoutMs: 500"),
    "dno-remote-",
  );
  const r = await run(dir, process.env);
  assert.equal(r.code, 1);
  assert.match(
    r.stderr,
    /dno: error: eval\/0: the sampler's server was not ready at http:\/\/127\.0\.0\.1:\d+\/v1\/models after 500 ms: sleep 30/,
  );
});
