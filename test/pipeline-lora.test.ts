/**
 * A run with `train.lora`: every iteration trains a LoRA adapter on pi_t, the run directory keeps the
 * base once (pi_1) and one adapter checkpoint per iteration, any pi_t loads exactly (the final weights'
 * hash), and kill -9 during training resumes to the same weights.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { CausalLM } from "../src/model/model.js";
import { BIN, dno, setupRun } from "./run-fixture.js";

const CONFIG = `seed: 3
run_dir: run
model: { from_scratch: { hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 32 } }
sft: { data: sft.jsonl, lr: 0.01, batch_size: 8, epochs: 1 }
data: { prompts: prompts.jsonl, eval: eval.jsonl }
oracle: { kind: programmatic, module: oracle.mjs }
iterations: 2
sampling: { samples_per_prompt: 3, max_new_tokens: 8 }
pairs: { margin: 0.1, student_margin: 0.1, min_positive: 0.3 }
train: { lr: 0.01, batch_size: 4, lora: { r: 4, alpha: 8, target_modules: [q_proj, v_proj, o_proj, down_proj] } }
eval: { samples_per_prompt: 1 }
`;

const finalHash = (stdout: string) => /final weights sha256 ([0-9a-f]{64})/.exec(stdout)?.[1];
const dirBytes = (dir: string) => readdirSync(dir).reduce((n, f) => n + statSync(join(dir, f)).size, 0);

/** Starts `dno run` and SIGKILLs it once `stage` has finished and `delayMs` more have passed. */
function killAfter(dir: string, stage: string, delayMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, "run", "--config", "dno.yaml"], { cwd: dir });
    let err = "";
    child.stderr.on("data", (d: Buffer) => {
      err += d.toString();
      if (err.includes(`  ${stage}: `)) setTimeout(() => child.kill("SIGKILL"), delayMs);
    });
    child.on("exit", (code, signal) => {
      if (signal === "SIGKILL" || code === 0) resolve();
      else reject(new Error(`dno run exited ${code}: ${err}`));
    });
  });
}

test("train.lora: one adapter per iteration over the base kept once; pi_t reloads exactly; resumes after kill -9", async () => {
  const dir = setupRun(CONFIG, "dno-lora-run-");
  const r = dno(dir, "run", "--config", "dno.yaml");
  assert.equal(r.status, 0, r.stderr);
  const hash = finalHash(r.stdout);
  const ckpt = join(dir, "run/checkpoints");
  assert.ok(existsSync(join(ckpt, "pi_1/model.safetensors")));
  for (const t of [2, 3]) {
    const files = readdirSync(join(ckpt, `pi_${t}`));
    assert.ok(
      files.includes("adapter_model.safetensors") && files.includes("adapter_config.json"),
      files.join(),
    );
    assert.ok(!files.includes("model.safetensors") && !files.includes("config.json"), files.join());
    const config = JSON.parse(readFileSync(join(ckpt, `pi_${t}/adapter_config.json`), "utf8"));
    assert.equal(config.base_model_name_or_path, `../pi_${t - 1}`);
    assert.deepEqual(config.target_modules, ["q_proj", "v_proj", "o_proj", "down_proj"]);
    assert.ok(dirBytes(join(ckpt, `pi_${t}`)) < dirBytes(join(ckpt, "pi_1")) / 2);
  }
  assert.equal(CausalLM.load(join(ckpt, "pi_3")).weightsSha256(), hash);
  // the adapter moved the policy: pi_3 differs from pi_2 differs from pi_1
  const sha = (t: number) => CausalLM.load(join(ckpt, `pi_${t}`)).weightsSha256();
  assert.equal(new Set([sha(1), sha(2), hash]).size, 3);

  const resumed = setupRun(CONFIG, "dno-lora-resume-");
  for (const [stage, delay] of [
    ["1/reference", 30],
    ["2/reference", 5],
  ] as const)
    await killAfter(resumed, stage, delay);
  const again = dno(resumed, "run", "--config", "dno.yaml");
  assert.equal(again.status, 0, again.stderr);
  assert.equal(finalHash(again.stdout), hash);
});
