import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { parseConfig } from "../src/model/config.js";
import { generate } from "../src/model/generate.js";
import { CausalLM } from "../src/model/model.js";
import { SafetensorsReader } from "../src/model/safetensors.js";
import { readRun, reportData, statusText } from "../src/pipeline/inspect.js";
import { initPolicy, trainSteps } from "../src/pipeline/policy.js";
import { keptBatches } from "../src/pipeline/stages.js";
import { DnoError } from "../src/util/errors.js";
import { BIN } from "./run-fixture.js";
import { runTiny, snapshot, TINY_CONFIG, tinyRunInputs } from "./tiny-run.js";

let finished: Promise<{ dir: string; hash: string }> | undefined;
/** One finished tiny run; every test damages its own copy. */
function finishedRun() {
  finished ??= (async () => {
    const dir = tinyRunInputs();
    const result = await runTiny(dir);
    return { dir, hash: result.finalWeightsSha256 };
  })();
  return finished;
}

async function copyOfFinished(): Promise<string> {
  const { dir } = await finishedRun();
  const copy = mkdtempSync(join(tmpdir(), "dno-integrity-"));
  cpSync(dir, copy, { recursive: true });
  return copy;
}

const rejectsWith = (p: Promise<unknown>, pattern: RegExp) =>
  assert.rejects(p, (e: unknown) => e instanceof DnoError && pattern.test(e.message));

test("results without a usable state are refused, and nothing in the directory changes", async () => {
  for (const damage of ["missing", "empty"] as const) {
    const dir = await copyOfFinished();
    const state = join(dir, "run/state.sqlite");
    if (damage === "missing") rmSync(state);
    else truncateSync(state, 0);
    const before = snapshot(dir);
    await rejectsWith(
      runTiny(dir),
      /run: holds results \(data, checkpoints, iterations, metrics\.jsonl\) but no usable run state/,
    );
    assert.throws(() => readRun(join(dir, "run")), /holds results .* but no usable run state/);
    assert.deepEqual(snapshot(dir), before, damage);
  }
});

test("a damaged stage output: dno run refuses before writing anything; status names the file, read-only", async () => {
  const dir = await copyOfFinished();
  const pairs = join(dir, "run/iterations/1/pairs.jsonl");
  writeFileSync(pairs, readFileSync(pairs).subarray(0, 40));
  const before = snapshot(dir);
  await rejectsWith(runTiny(dir), /pairs\.jsonl: changed since stage "1\/pairs" wrote it/);
  assert.deepEqual(snapshot(dir), before, "metrics.jsonl and every other file untouched");
  const run = readRun(join(dir, "run"));
  assert.deepEqual(
    run.damage.map((d) => d.stage),
    ["1/pairs"],
  );
  const text = statusText(run);
  assert.match(text, /stages finished, 1 damaged/);
  assert.match(text, /DAMAGED 1\/pairs/);
  assert.match(text, /damaged: .*pairs\.jsonl: changed since stage "1\/pairs"/);
  assert.deepEqual(snapshot(dir), before, "reading a run writes nothing");
});

test("status and report data of a whole run read without writing a byte", async () => {
  const dir = await copyOfFinished();
  const before = snapshot(dir);
  const run = readRun(join(dir, "run"));
  assert.deepEqual(run.damage, []);
  assert.match(statusText(run), /finished$/);
  assert.ok(reportData(run).oracleJudgments > 0);
  assert.deepEqual(snapshot(dir), before);
});

test("the config snapshot and the inputs are checked like stage outputs", async () => {
  const dir = await copyOfFinished();
  const snap = join(dir, "run/config.yaml");
  writeFileSync(snap, readFileSync(snap, "utf8").replace("iterations: 1", "iterations: 5"));
  await rejectsWith(runTiny(dir), /config\.yaml: changed since dno run wrote it/);
  assert.equal(readRun(join(dir, "run")).damage[0]!.stage, "config");

  const other = await copyOfFinished();
  writeFileSync(join(other, "prompts.jsonl"), `${readFileSync(join(other, "prompts.jsonl"), "utf8")}\n`);
  await rejectsWith(runTiny(other), /prompts\.jsonl \(data\.prompts\): changed since the run started/);

  writeFileSync(join(other, "dno.yaml"), TINY_CONFIG.replace("seed: 3", "seed: 4"));
  await rejectsWith(runTiny(other), /started with a different config \(changed: seed\)/);
});

test("an interrupted run moved to another folder resumes there and ends with the same weights", async () => {
  const { hash } = await finishedRun();
  const dir = tinyRunInputs();
  const stop = new Error("interrupted");
  await assert.rejects(
    runTiny(dir, {
      events: {
        finish: (r) => {
          if (r.name === "1/sample") throw stop;
        },
      },
    }),
    (e) => e === stop,
  );
  const moved = mkdtempSync(join(tmpdir(), "dno-moved-"));
  cpSync(dir, moved, { recursive: true });
  rmSync(dir, { recursive: true });
  const started: string[] = [];
  const result = await runTiny(moved, { events: { start: (name) => started.push(name) } });
  assert.equal(result.finalWeightsSha256, hash);
  assert.deepEqual(started, ["1/annotate", "1/pairs", "1/reference", "1/train", "1/eval", "select"]);
  assert.doesNotMatch(readFileSync(join(moved, "run/config.yaml"), "utf8"), new RegExp(dir));
});

test("an interrupted SFT resumes from its last saved step and ends with the same weights", async () => {
  const { hash } = await finishedRun();
  const dir = tinyRunInputs();
  const stop = new Error("interrupted");
  await assert.rejects(
    runTiny(dir, {
      progress: (stage, done) => {
        if (stage === "sft" && done === 3) throw stop;
      },
    }),
    (e) => e === stop,
  );
  const firstSteps: number[] = [];
  const result = await runTiny(dir, {
    progress: (stage, done) => {
      if (stage === "sft" && firstSteps.length === 0) firstSteps.push(done);
    },
  });
  assert.deepEqual(firstSteps, [3], "steps 1-2 were kept, step 3 was redone");
  assert.equal(result.finalWeightsSha256, hash);
});

test("kill -9 during SFT: the rerun continues from the saved step and ends with the same weights", async () => {
  const config = TINY_CONFIG.replace("epochs: 1,", "epochs: 40,");
  const reference = (await runTiny(tinyRunInputs(config))).finalWeightsSha256;
  const dir = tinyRunInputs(config);
  const progress = join(dir, "run/checkpoints/pi_1.progress.safetensors");
  const child = spawn(process.execPath, [BIN, "run", "--config", "dno.yaml"], { cwd: dir, stdio: "ignore" });
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (existsSync(progress)) child.kill("SIGKILL");
    }, 2);
    child.on("exit", (code, signal) => {
      clearInterval(poll);
      if (signal === "SIGKILL") resolve();
      else reject(new Error(`dno run exited ${code} before it could be killed during SFT`));
    });
  });
  const saved = new SafetensorsReader(progress);
  const steps = (JSON.parse(saved.metadata.log!) as unknown[]).length;
  saved.close();
  assert.ok(steps >= 1 && steps < 160, `${steps} steps saved`);
  const resumed: number[] = [];
  const result = await runTiny(dir, {
    progress: (stage, done) => {
      if (stage === "sft" && resumed.length === 0) resumed.push(done);
    },
  });
  assert.equal(resumed[0], steps + 1, "the first step after the saved ones runs first");
  assert.equal(result.finalWeightsSha256, reference);
  assert.equal(existsSync(progress), false, "the progress file is gone once the checkpoint is written");
});

test("a NaN loss or an infinite gradient stops training at its step; the last good state is kept", () => {
  const arch = {
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    max_position_embeddings: 32,
    rope_theta: 10000,
    tie_word_embeddings: true,
  };
  const units = Array.from({ length: 8 }, (_, i) => ({ prompt: [256, 97 + i], response: [98 + i, 257] }));
  for (const bad of ["loss", "gradient"] as const) {
    const policy = initPolicy(arch, 1);
    const resumeFile = join(mkdtempSync(join(tmpdir(), "dno-nan-")), "progress.safetensors");
    let step = 0;
    let afterStep2 = new Float32Array();
    const options = {
      lr: 0.01,
      batch_size: 2,
      epochs: 1,
      warmup_steps: 0,
      weight_decay: 0,
      grad_clip: 1,
      seed: 1,
      stage: "sft",
      resume: { file: resumeFile, everySeconds: 0 },
      examplesOf: (batch: readonly (typeof units)[number][]) => [...batch],
      lossOf: () => {
        step++;
        if (step === 3) afterStep2 = policy.model.params.slice();
        return (lp: Float64Array) => {
          const poisoned = step === 3;
          const grad = new Float64Array(lp.length).fill(poisoned && bad === "gradient" ? Infinity : -1);
          return {
            loss: poisoned && bad === "loss" ? Number.NaN : -lp.reduce((a, b) => a + b, 0),
            grad,
            margin: null,
          };
        };
      },
    };
    assert.throws(
      () => trainSteps(policy, units, options),
      (e: unknown) =>
        e instanceof DnoError &&
        new RegExp(
          `^sft: training stopped at step 3 of 4: the ${bad === "loss" ? "loss is NaN" : "gradient norm is (NaN|Infinity)"}; ` +
            "no update was applied, the last good state \\(after step 2\\) is kept in .*progress\\.safetensors",
        ).test(e.message),
    );
    assert.deepEqual(policy.model.params, afterStep2, `${bad}: the poisoned step changed no weight`);
    const saved = new SafetensorsReader(resumeFile);
    assert.equal((JSON.parse(saved.metadata.log!) as unknown[]).length, 2);
    assert.deepEqual(saved.read("params"), afterStep2);
    saved.close();
  }
});

test("kept batches: a stage resumes after its last finished batch; samples do not depend on batching", async () => {
  const dir = mkdtempSync(join(tmpdir(), "dno-batches-"));
  const calls: number[] = [];
  const work = async (start: number, end: number) => {
    calls.push(start);
    if (start === 4 && calls.length === 3) throw new Error("killed");
    return Array.from({ length: end - start }, (_, i) => start + i);
  };
  await assert.rejects(keptBatches(dir, "part", 7, 2, work));
  assert.deepEqual(await keptBatches(dir, "part", 7, 2, work), [0, 1, 2, 3, 4, 5, 6]);
  assert.deepEqual(calls, [0, 2, 4, 4, 6]);

  const config = parseConfig(
    {
      vocab_size: 40,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: 32,
    },
    "test",
  );
  const model = CausalLM.init(config, 5);
  const prompts = [[1, 2], [3], [4, 5, 6], [7]];
  const options = { samplesPerPrompt: 2, temperature: 1, maxNewTokens: 5, eosTokenIds: [0], seed: 9 };
  const whole = await generate(model, prompts, options);
  const tail = await generate(model, prompts.slice(2), { ...options, firstPromptIndex: 2 });
  assert.deepEqual(tail, whole.slice(2));
});
