/**
 * `trainer: { kind: command, command, env? }`: an external program trains pi_{t+1} (README "External
 * trainers"). dno fills the template's `{pairs}`, `{policy}`, `{out}` and `{args}`, runs it, and accepts
 * `{out}` only if it holds a Hugging Face checkpoint the engine loads (config.json, safetensors,
 * tokenizer) or a PEFT adapter. A failed or killed command fails the stage, which a rerun starts over
 * in an empty `{out}`.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fillTemplate, runShell } from "../util/command.js";
import { DnoError } from "../util/errors.js";
import { loadPolicy, policyWeightsSha256 } from "./policy.js";
import type { Trainer, TrainResult } from "./trainer.js";

export interface CommandTrainerConfig {
  command: string;
  env?: Record<string, string> | undefined;
}

export function commandTrainer(config: CommandTrainerConfig): Trainer {
  return {
    async train(job): Promise<TrainResult> {
      const command = fillTemplate(
        config.command,
        { pairs: job.pairsFile, policy: job.policyDir, out: job.outDir, args: job.argsFile },
        "trainer.command",
      );
      const { code, signal } = await runShell(command, { env: config.env, logFile: job.logFile });
      if (code !== 0) {
        const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
        throw new DnoError(`trainer command ${how}: ${command} (its output is in ${job.logFile})`);
      }
      return checkTrainerOutput(job.outDir, command);
    },
  };
}

/**
 * What a trainer left in `dir`: a full checkpoint (loaded, so it is known to work as the next
 * iteration's policy, and hashed as the engine hashes weights) or a PEFT adapter (its files hashed).
 */
export function checkTrainerOutput(dir: string, command: string): TrainResult {
  const files = existsSync(dir) ? readdirSync(dir) : [];
  const has = (name: string) => files.includes(name);
  if (has("config.json") && files.some((f) => f.endsWith(".safetensors"))) {
    if (!has("tokenizer.json")) {
      throw new DnoError(`trainer command left ${dir} without tokenizer.json: ${command}`);
    }
    const policy = loadPolicy(dir);
    return { weightsSha256: policyWeightsSha256(policy), steps: 0, log: [] };
  }
  if (has("adapter_config.json") && has("adapter_model.safetensors")) {
    const hash = createHash("sha256");
    for (const f of ["adapter_config.json", "adapter_model.safetensors"])
      hash.update(readFileSync(join(dir, f)));
    return { weightsSha256: hash.digest("hex"), steps: 0, log: [] };
  }
  throw new DnoError(
    `trainer command left no checkpoint in ${dir} (want config.json + *.safetensors + tokenizer.json, ` +
      `or a PEFT adapter: adapter_config.json + adapter_model.safetensors; found: ${files.join(", ") || "nothing"}): ${command}`,
  );
}
