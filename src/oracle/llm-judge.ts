import OpenAI from "openai";
import { deriveSeed, Rng } from "../core/rng.js";
import { type Link, makeOracle } from "./adapters.js";
import { JudgmentCache, sha256Hex } from "./cache.js";
import { CachedCaller } from "./cached-caller.js";
import { classifyOpenAIError } from "./http-status.js";
import { type Attempt, CallRunner, type ReliabilityOptions } from "./reliability.js";
import type { PromptTemplate } from "./templates.js";
import {
  emptyUsage,
  type JudgeMessage,
  type Oracle,
  type OracleMode,
  type PreferenceResult,
  type ScoreResult,
  type TextJudgment,
} from "./types.js";
import { parsePairwiseVerdict, parsePointwiseAnswer, type Verdict } from "./verdicts.js";

/** The rubric's score range: additive points, 0 when not even an answer. */
export const RUBRIC_MIN = 0;
export const RUBRIC_MAX = 6;

export interface LlmJudgeSettings {
  mode: OracleMode;
  baseUrl: string;
  model: string;
  apiKey?: string | undefined;
  apiKeyEnv?: string | undefined;
  temperature: number;
  maxTokens: number;
  /** Seeds the candidate shuffle and is sent as the request's `seed`. */
  seed: number;
  system?: string | undefined;
  templates: { pointwise: PromptTemplate; pairwise: PromptTemplate };
  link: Link;
  reliability: ReliabilityOptions;
  cachePath: string;
  configHash: string;
}

interface PointwiseResult {
  /** In the caller's candidate order. */
  scores: number[];
  justifications: string[];
}

/**
 * An LLM judge over the OpenAI chat-completions protocol. Pointwise: all candidates in one prompt,
 * shown in a seeded random order, scored on the additive 6-point rubric and mapped back. Pairwise:
 * both orders asked (position swap), each a cached judgment; inconsistent verdicts average to a tie.
 */
export function llmJudgeOracle(settings: LlmJudgeSettings): Oracle {
  const usage = emptyUsage();
  const cache = new JudgmentCache(settings.cachePath);
  const runner = new CallRunner(settings.reliability, usage);
  const caller = new CachedCaller(cache, settings.configHash, runner, usage);
  const key = settings.apiKey;
  const client = new OpenAI({
    baseURL: settings.baseUrl,
    // Local servers need no key; the client insists on a non-empty one.
    apiKey: key ?? "no-key",
    maxRetries: 0,
    timeout: settings.reliability.timeoutMs,
    logLevel: "off",
  });

  function chat(user: string, timeoutMs: number): Promise<Attempt<string>> {
    const messages: OpenAI.ChatCompletionMessageParam[] = [];
    if (settings.system) messages.push({ role: "system", content: settings.system });
    messages.push({ role: "user", content: user });
    return send(messages, timeoutMs);
  }

  async function send(
    messages: OpenAI.ChatCompletionMessageParam[],
    timeoutMs: number,
  ): Promise<Attempt<string>> {
    let completion: OpenAI.ChatCompletion;
    try {
      completion = await client.chat.completions.create(
        {
          model: settings.model,
          messages,
          temperature: settings.temperature,
          max_tokens: settings.maxTokens,
          seed: settings.seed,
        },
        { timeout: timeoutMs, maxRetries: 0 },
      );
    } catch (e) {
      return classifyError(e, timeoutMs);
    }
    const promptTokens = completion.usage?.prompt_tokens ?? 0;
    const completionTokens = completion.usage?.completion_tokens ?? 0;
    const choice = completion.choices?.[0];
    const content = choice?.message?.content;
    if (typeof content !== "string") {
      return {
        ok: false,
        kind: "failed",
        reason: "the answer has no message content",
        promptTokens,
        completionTokens,
      };
    }
    if (choice?.finish_reason === "length") {
      const reason = `the answer was cut at maxTokens (${settings.maxTokens})`;
      return { ok: false, kind: "failed", reason, promptTokens, completionTokens };
    }
    return { ok: true, value: content, raw: content, promptTokens, completionTokens };
  }

  const classifyError = (e: unknown, timeoutMs: number) =>
    classifyOpenAIError(e, timeoutMs, settings.baseUrl, settings.apiKeyEnv, key);

  async function score(prompt: string, candidates: readonly string[]): Promise<ScoreResult> {
    if (candidates.length === 0) return { scores: [] };
    const shuffleSeed = deriveSeed(
      settings.seed,
      "pointwise-order",
      sha256Hex(JSON.stringify([prompt, candidates])),
    );
    const order = Rng.derive(shuffleSeed).shuffle(candidates.map((_, i) => i));
    const shown = order.map((original, j) => ({ id: String(j + 1), text: candidates[original]! }));
    const outcome = await caller.judge<PointwiseResult>(
      "pointwise",
      prompt,
      candidates,
      async (timeoutMs) => {
        const user = settings.templates.pointwise.render({
          prompt,
          candidates: shown,
          min_score: RUBRIC_MIN,
          max_score: RUBRIC_MAX,
        });
        const answer = await chat(user, timeoutMs);
        if (!answer.ok) return answer;
        const parsed = parsePointwiseAnswer(
          answer.value,
          shown.map((c) => c.id),
          RUBRIC_MIN,
          RUBRIC_MAX,
        );
        if (typeof parsed === "string") {
          return failedAfterPaying(answer, `unparseable judgment: ${parsed}`);
        }
        const scores = new Array<number>(candidates.length);
        const justifications = new Array<string>(candidates.length);
        shown.forEach((c, j) => {
          scores[order[j]!] = parsed.scores.get(c.id)!;
          justifications[order[j]!] = parsed.justifications.get(c.id)!;
        });
        return { ...answer, value: { scores, justifications } };
      },
    );
    if (!outcome.ok) return { scores: candidates.map(() => null), failed: outcome.reason };
    return { scores: outcome.value.scores };
  }

  /** One ordered judgment: the verdict with A = `first`. */
  function judgeOrdered(prompt: string, first: string, second: string) {
    return caller.judge<Verdict>("pairwise", prompt, [first, second], async (timeoutMs) => {
      const user = settings.templates.pairwise.render({ prompt, response_a: first, response_b: second });
      const answer = await chat(user, timeoutMs);
      if (!answer.ok) return answer;
      const verdict = parsePairwiseVerdict(answer.value);
      if (verdict === null) {
        const reason = `unparseable judgment: no single verdict in ${JSON.stringify(answer.value.slice(-80))}`;
        return failedAfterPaying(answer, reason);
      }
      return { ...answer, value: verdict };
    });
  }

  async function compare(prompt: string, a: string, b: string): Promise<PreferenceResult> {
    const [ab, ba] = await Promise.all([judgeOrdered(prompt, a, b), judgeOrdered(prompt, b, a)]);
    if (!ab.ok) return { preference: null, failed: ab.reason };
    if (!ba.ok) return { preference: null, failed: ba.reason };
    const win = (v: Verdict, aIsFirst: boolean) => (v === "tie" ? 0.5 : (v === "A") === aIsFirst ? 1 : 0);
    return { preference: (win(ab.value, true) + win(ba.value, false)) / 2 };
  }

  /** A benchmark's own judge prompt: its system prompt replaces the config's `system`. */
  async function ask(system: string, messages: readonly JudgeMessage[]): Promise<TextJudgment> {
    const outcome = await caller.judge<string>(
      "ask",
      system,
      messages.map((m) => JSON.stringify([m.role, m.content])),
      (timeoutMs) => send([{ role: "system", content: system }, ...messages], timeoutMs),
    );
    return outcome.ok ? { text: outcome.value } : { text: null, failed: outcome.reason };
  }

  return makeOracle({
    ...(settings.mode === "pointwise" ? { score } : { compare }),
    ask,
    link: settings.link,
    usage: () => ({ ...usage }),
    close: () => cache.close(),
  });
}

/** An answer that arrived (and was paid for) but cannot be used. */
function failedAfterPaying(
  answer: { promptTokens: number; completionTokens: number },
  reason: string,
): Attempt<never> {
  return {
    ok: false,
    kind: "failed",
    reason,
    promptTokens: answer.promptTokens,
    completionTokens: answer.completionTokens,
  };
}
