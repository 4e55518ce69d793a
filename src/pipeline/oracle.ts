/**
 * The run's oracle: any oracle from a config (src/oracle), behind the run's own durable judgment cache
 * (`oracle-cache.sqlite`), so a resumed or repeated run never asks the same question twice.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson, JudgmentCache, judgmentKey, sha256Hex } from "../oracle/cache.js";
import { createOracle, type Oracle, type OracleConfig } from "../oracle/index.js";

export interface RunOracle {
  /** P(a > b | prompt), null when the judgment failed (never a label). */
  compare(prompt: string, a: string, b: string): Promise<number | null>;
  /** The oracle's scores for a candidate set, null where failed. */
  score(prompt: string, candidates: readonly string[]): Promise<(number | null)[]>;
  readonly mode: Oracle["mode"];
  /** Judgments paid for by this process (cache misses that succeeded or failed). */
  calls(): number;
  /** Distinct judgments ever paid for in this run. */
  paidJudgments(): number;
  close(): void;
}

export async function openRunOracle(config: OracleConfig, runDir: string): Promise<RunOracle> {
  const oracle = await createOracle(config, { baseDir: runDir });
  // What can change an answer: the config, and for a programmatic oracle the module's code.
  const identity =
    config.kind === "programmatic"
      ? { config, code: sha256Hex(readFileSync(config.module, "utf8")) }
      : config;
  const configHash = sha256Hex(canonicalJson(identity));
  const cache = new JudgmentCache(join(runDir, "oracle-cache.sqlite"));
  let calls = 0;
  return {
    mode: oracle.mode,
    async compare(prompt, a, b) {
      const key = judgmentKey(configHash, "compare", prompt, [a, b]);
      const hit = cache.get(key);
      if (hit) return hit.result as number;
      calls++;
      const r = await oracle.compare(prompt, a, b);
      if (r.preference !== null) {
        cache.put(key, configHash, { result: r.preference, raw: "", promptTokens: 0, completionTokens: 0 });
      }
      return r.preference;
    },
    async score(prompt, candidates) {
      const key = judgmentKey(configHash, "score", prompt, candidates);
      const hit = cache.get(key);
      if (hit) return hit.result as (number | null)[];
      calls++;
      const r = await oracle.score(prompt, candidates);
      if (r.failed === undefined) {
        cache.put(key, configHash, { result: r.scores, raw: "", promptTokens: 0, completionTokens: 0 });
      }
      return r.scores;
    },
    calls: () => calls,
    paidJudgments: () => cache.size(),
    close() {
      cache.close();
      oracle.close();
    },
  };
}
