import { setTimeout as sleep } from "node:timers/promises";
import { DnoError } from "../util/errors.js";
import type { OracleUsage } from "./types.js";

export interface ReliabilityOptions {
  /** Requests in flight at once, at most. */
  concurrency: number;
  /** Per-request timeout. */
  timeoutMs: number;
  /** Retries after the first attempt on 429, 5xx, timeouts and connection errors. */
  maxRetries: number;
  /** Backoff before retry n (0-based) is min(retryMaxMs, retryBaseMs * 2^n), jittered to 50-100%. */
  retryBaseMs: number;
  retryMaxMs: number;
  /** Stop sending requests once either is reached (checked before each request). */
  budget: { maxCalls?: number | undefined; maxTokens?: number | undefined };
}

/** A server's Retry-After beyond this fails the judgment rather than stalling the run. */
const MAX_RETRY_AFTER_MS = 10 * 60 * 1000;

/** The outcome of one request. `fatal` stops the whole run (a wrong key or model fails every call). */
export type Attempt<T> =
  | { ok: true; value: T; raw: string; promptTokens: number; completionTokens: number }
  | {
      ok: false;
      kind: "retryable" | "failed" | "fatal";
      reason: string;
      retryAfterMs?: number | undefined;
      /** Tokens paid for an answer that could not be used (unparseable, truncated). */
      promptTokens?: number;
      completionTokens?: number;
    };

export type CallOutcome<T> =
  | { ok: true; value: T; raw: string; promptTokens: number; completionTokens: number }
  | { ok: false; reason: string };

/** Runs at most `limit` tasks at once, first come first served. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly limit: number) {
    if (!(Number.isInteger(limit) && limit >= 1))
      throw new RangeError(`concurrency must be >= 1, got ${limit}`);
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

/**
 * Milliseconds a response asks us to wait: `retry-after-ms`, else `retry-after` as seconds (fractions
 * accepted) or an HTTP date. Undefined when absent or unreadable.
 */
export function retryAfterMs(
  header: (name: string) => string | null | undefined,
  now = Date.now(),
): number | undefined {
  const ms = header("retry-after-ms");
  if (ms != null && ms.trim() !== "" && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const value = header("retry-after");
  if (value == null || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/**
 * Sends requests under one concurrency limit, one budget and one retry policy, and keeps the usage
 * counters. Each attempt holds a concurrency slot only while its request is in flight, not while
 * backing off.
 */
export class CallRunner {
  private readonly limiter: Limiter;

  constructor(
    private readonly options: ReliabilityOptions,
    private readonly usage: OracleUsage,
    private readonly random: () => number = Math.random,
  ) {
    this.limiter = new Limiter(options.concurrency);
  }

  /** Why no more requests may be sent, or undefined while the budget lasts. */
  private budgetStop(): string | undefined {
    const { maxCalls, maxTokens } = this.options.budget;
    const tokens = this.usage.promptTokens + this.usage.completionTokens;
    let reason: string | undefined;
    if (maxCalls !== undefined && this.usage.calls >= maxCalls)
      reason = `budget exhausted: ${maxCalls} calls`;
    else if (maxTokens !== undefined && tokens >= maxTokens)
      reason = `budget exhausted: ${tokens} of ${maxTokens} tokens`;
    if (reason) this.usage.budgetExhausted = true;
    return reason;
  }

  async call<T>(attempt: (timeoutMs: number) => Promise<Attempt<T>>): Promise<CallOutcome<T>> {
    for (let n = 0; ; n++) {
      const result = await this.limiter.run(async (): Promise<Attempt<T>> => {
        const stop = this.budgetStop();
        if (stop) return { ok: false, kind: "failed", reason: stop };
        this.usage.calls++;
        return attempt(this.options.timeoutMs);
      });
      this.usage.promptTokens += result.promptTokens ?? 0;
      this.usage.completionTokens += result.completionTokens ?? 0;
      if (result.ok) return result;
      if (result.kind === "fatal") throw new DnoError(result.reason);
      if (result.kind === "failed") return { ok: false, reason: result.reason };
      if (n >= this.options.maxRetries) {
        return { ok: false, reason: `${result.reason} (gave up after ${n + 1} attempts)` };
      }
      if (result.retryAfterMs !== undefined && result.retryAfterMs > MAX_RETRY_AFTER_MS) {
        return {
          ok: false,
          reason: `${result.reason}; server asked to retry after ${result.retryAfterMs} ms`,
        };
      }
      const backoff = Math.min(this.options.retryMaxMs, this.options.retryBaseMs * 2 ** n);
      const jittered = backoff * (0.5 + 0.5 * this.random());
      this.usage.retries++;
      await sleep(Math.max(result.retryAfterMs ?? 0, jittered));
    }
  }
}
