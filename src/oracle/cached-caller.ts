import { type JudgmentCache, judgmentKey } from "./cache.js";
import type { Attempt, CallOutcome, CallRunner } from "./reliability.js";
import type { OracleUsage } from "./types.js";

/**
 * Answers a judgment from the cache when it was paid for before; otherwise sends it (once, however many
 * callers ask for it at the same moment) and stores it if it succeeded. Failures are counted, not stored.
 */
export class CachedCaller {
  private readonly inFlight = new Map<string, Promise<CallOutcome<unknown>>>();

  constructor(
    private readonly cache: JudgmentCache,
    private readonly configHash: string,
    private readonly runner: CallRunner,
    private readonly usage: OracleUsage,
  ) {}

  async judge<T>(
    call: string,
    prompt: string,
    candidates: readonly string[],
    attempt: (timeoutMs: number) => Promise<Attempt<T>>,
  ): Promise<CallOutcome<T>> {
    const key = judgmentKey(this.configHash, call, prompt, candidates);
    const pending = this.inFlight.get(key);
    if (pending) return (await pending) as CallOutcome<T>;
    const hit = this.cache.get(key);
    if (hit) {
      this.usage.cacheHits++;
      return { ok: true, value: hit.result as T, raw: hit.raw, promptTokens: 0, completionTokens: 0 };
    }
    const request = this.runner.call(attempt).then((outcome) => {
      if (outcome.ok) {
        this.cache.put(key, this.configHash, {
          result: outcome.value,
          raw: outcome.raw,
          promptTokens: outcome.promptTokens,
          completionTokens: outcome.completionTokens,
        });
      } else {
        this.usage.failures++;
      }
      return outcome;
    });
    this.inFlight.set(key, request);
    try {
      return await request;
    } finally {
      this.inFlight.delete(key);
    }
  }
}
