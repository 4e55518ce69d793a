/**
 * The run's oracle: any oracle from a config (src/oracle), behind the run's own durable judgment cache
 * (`oracle-cache.sqlite`), so a resumed or repeated run never asks the same question twice. An
 * ensemble caches each member under the member's own identity, so adding a member asks only it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { canonicalJson, JudgmentCache, judgmentKey, sha256Hex } from "../oracle/cache.js";
import {
  createOracle,
  ensembleOracle,
  type MemberConfig,
  type Oracle,
  type OracleConfig,
} from "../oracle/index.js";

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

/** What can change a member's answers: its config, and for a programmatic oracle the module's code. */
function identityHash(config: MemberConfig): string {
  const identity =
    config.kind === "programmatic"
      ? { config, code: sha256Hex(readFileSync(config.module, "utf8")) }
      : config;
  return sha256Hex(canonicalJson(identity));
}

/**
 * `oracle` with its successful judgments stored in `cache` under `identity`; `onPaid` counts the
 * judgments the cache could not answer.
 */
export function cachedOracle(
  oracle: Oracle,
  identity: string,
  cache: JudgmentCache,
  onPaid: () => void,
): Oracle {
  const compare: Oracle["compare"] = async (prompt, a, b) => {
    const key = judgmentKey(identity, "compare", prompt, [a, b]);
    const hit = cache.get(key);
    if (hit) return { preference: hit.result as number };
    onPaid();
    const r = await oracle.compare(prompt, a, b);
    if (r.preference !== null) {
      cache.put(key, identity, { result: r.preference, raw: "", promptTokens: 0, completionTokens: 0 });
    }
    return r;
  };
  const score: Oracle["score"] = async (prompt, candidates) => {
    const key = judgmentKey(identity, "score", prompt, candidates);
    const hit = cache.get(key);
    if (hit) return { scores: hit.result as (number | null)[] };
    onPaid();
    const r = await oracle.score(prompt, candidates);
    if (r.failed === undefined) {
      cache.put(key, identity, { result: r.scores, raw: "", promptTokens: 0, completionTokens: 0 });
    }
    return r;
  };
  return {
    ...oracle,
    compare,
    score,
    prefer: async (prompt, a, b) => (await compare(prompt, a, b)).preference,
  };
}

export async function openRunOracle(config: OracleConfig, runDir: string): Promise<RunOracle> {
  const cache = new JudgmentCache(join(runDir, "oracle-cache.sqlite"));
  let calls = 0;
  const paid = () => {
    calls++;
  };
  const member = async (m: MemberConfig) =>
    cachedOracle(await createOracle(m, { baseDir: runDir }), identityHash(m), cache, paid);
  let oracle: Oracle;
  try {
    oracle =
      config.kind === "ensemble"
        ? ensembleOracle(await Promise.all(config.members.map(member)), {
            aggregate: config.aggregate,
            lambda: config.lambda,
            ...(config.minMembers !== undefined && { minMembers: config.minMembers }),
            link: config.link,
          })
        : await member(config);
  } catch (e) {
    cache.close();
    throw e;
  }
  return runOracleOf(oracle, cache, () => calls);
}

/** The run's narrow view of a cached oracle. */
export function runOracleOf(oracle: Oracle, cache: JudgmentCache, calls: () => number): RunOracle {
  return {
    mode: oracle.mode,
    compare: async (prompt, a, b) => (await oracle.compare(prompt, a, b)).preference,
    score: async (prompt, candidates) => (await oracle.score(prompt, candidates)).scores,
    calls,
    paidJudgments: () => cache.size(),
    close() {
      cache.close();
      oracle.close();
    },
  };
}
