import { z } from "zod";
import { type Link, makeOracle } from "./adapters.js";
import { redact } from "./api-key.js";
import { JudgmentCache } from "./cache.js";
import { CachedCaller } from "./cached-caller.js";
import { classifyStatus } from "./http-status.js";
import { type Attempt, CallRunner, type ReliabilityOptions, retryAfterMs } from "./reliability.js";
import { emptyUsage, type Oracle, type ScoreResult } from "./types.js";

export interface RewardModelSettings {
  /** POST endpoint: request `{ model?, prompt, responses: string[] }`, answer `{ scores: number[] }`. */
  url: string;
  model?: string | undefined;
  apiKey?: string | undefined;
  apiKeyEnv?: string | undefined;
  link: Link;
  reliability: ReliabilityOptions;
  cachePath: string;
  configHash: string;
}

const answerSchema = z.object({ scores: z.array(z.number().refine(Number.isFinite, "not finite")) });

/**
 * A reward model behind an HTTP scoring endpoint: r(x, y) per response, P(a > b) = sigmoid(r(a) - r(b))
 * with the default link. Rewards are cached per (prompt, response), so only unseen responses are sent.
 */
export function rewardModelOracle(settings: RewardModelSettings): Oracle {
  const usage = emptyUsage();
  const cache = new JudgmentCache(settings.cachePath);
  const runner = new CallRunner(settings.reliability, usage);
  const caller = new CachedCaller(cache, settings.configHash, runner, usage);
  const key = settings.apiKey;

  async function requestScores(prompt: string, responses: readonly string[], timeoutMs: number) {
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (key) headers.authorization = `Bearer ${key}`;
    const body = JSON.stringify({ ...(settings.model && { model: settings.model }), prompt, responses });
    let response: Response;
    try {
      response = await fetch(settings.url, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      const err = e as Error;
      const timedOut = err.name === "TimeoutError" || err.name === "AbortError";
      const reason = timedOut ? `timed out after ${timeoutMs} ms` : `connection error: ${causeText(err)}`;
      return { ok: false, kind: "retryable", reason } as const;
    }
    let text: string;
    try {
      text = await response.text();
    } catch (e) {
      return { ok: false, kind: "retryable", reason: `connection error: ${causeText(e as Error)}` } as const;
    }
    if (!response.ok) {
      const wait = retryAfterMs((name) => response.headers.get(name));
      return classifyStatus(
        response.status,
        redact(text.slice(0, 200), key),
        wait,
        settings.url,
        settings.apiKeyEnv,
      );
    }
    let parsed: z.infer<typeof answerSchema>;
    try {
      parsed = answerSchema.parse(JSON.parse(text));
    } catch {
      return {
        ok: false,
        kind: "failed",
        reason: `unparseable reward answer: ${redact(text.slice(0, 200), key)}`,
      } as const;
    }
    if (parsed.scores.length !== responses.length) {
      const reason = `reward answer has ${parsed.scores.length} scores for ${responses.length} responses`;
      return { ok: false, kind: "failed", reason } as const;
    }
    return { ok: true, value: parsed.scores, raw: text, promptTokens: 0, completionTokens: 0 } as const;
  }

  async function score(prompt: string, candidates: readonly string[]): Promise<ScoreResult> {
    const outcomes = await Promise.all(
      candidates.map((c) =>
        caller.judge("reward", prompt, [c], async (timeoutMs): Promise<Attempt<number>> => {
          const r = await requestScores(prompt, [c], timeoutMs);
          return r.ok ? { ...r, value: r.value[0]! } : r;
        }),
      ),
    );
    const failed = outcomes.flatMap((o, i) => (o.ok ? [] : [`candidate ${i}: ${o.reason}`]));
    const scores = outcomes.map((o) => (o.ok ? o.value : null));
    return failed.length ? { scores, failed: failed.join("; ") } : { scores };
  }

  return makeOracle({ score, link: settings.link, usage: () => ({ ...usage }), close: () => cache.close() });
}

function causeText(e: Error): string {
  const cause = (e as { cause?: unknown }).cause;
  return cause instanceof Error ? cause.message : e.message;
}
