/**
 * `trainer: { kind: command, command, env? }`: an external program trains pi_{t+1} (README "External
 * trainers"). dno fills the template's `{pairs}`, `{policy}`, `{out}` and `{args}`, runs it, and accepts
 * `{out}` only if it holds a Hugging Face checkpoint the engine loads (config.json, safetensors,
 * tokenizer) or a PEFT adapter. A failed or killed command fails the stage, which a rerun starts over
 * in an empty `{out}`.
 */
import { existsSync, readdirSync } from "node:fs";
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
 * What a trainer left in `dir`: a full checkpoint, or a PEFT adapter naming its base (pi_t: `{policy}`)
 * in base_model_name_or_path. Either is loaded, so it is known to work as the next iteration's policy,
 * and hashed as the engine hashes weights (an adapter merged into its base).
 */
export function checkTrainerOutput(dir: string, command: string): TrainResult {
  const files = existsSync(dir) ? readdirSync(dir) : [];
  const has = (name: string) => files.includes(name);
  const full = has("config.json") && files.some((f) => f.endsWith(".safetensors"));
  const adapter = has("adapter_config.json") && has("adapter_model.safetensors");
  if (!full && !adapter) {
    throw new DnoError(
      `trainer command left no checkpoint in ${dir} (want config.json + *.safetensors + tokenizer.json, ` +
        `or a PEFT adapter: adapter_config.json + adapter_model.safetensors; found: ${files.join(", ") || "nothing"}): ${command}`,
    );
  }
  if (!has("tokenizer.json")) {
    throw new DnoError(`trainer command left ${dir} without tokenizer.json: ${command}`);
  }
  let policy: ReturnType<typeof loadPolicy>;
  try {
    policy = loadPolicy(dir);
  } catch (e) {
    throw new DnoError(
      `trainer command left a checkpoint in ${dir} that does not load (${(e as Error).message}): ${command}`,
    );
  }
  return { weightsSha256: policyWeightsSha256(policy), steps: 0, log: [] };
}
