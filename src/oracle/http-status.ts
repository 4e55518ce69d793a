import OpenAI from "openai";
import { redact } from "./api-key.js";
import { type Attempt, retryAfterMs } from "./reliability.js";

/**
 * What a failed HTTP status means for the run: 408, 409, 429 and 5xx are worth retrying; 401, 403 and
 * 404 mean a wrong key, model or URL, which would fail every call, so they stop the run; any other 4xx
 * fails this judgment only.
 */
export function classifyStatus(
  status: number,
  detail: string,
  retryAfterMs: number | undefined,
  endpoint: string,
  apiKeyEnv: string | undefined,
): Attempt<never> {
  const reason = `HTTP ${status}${detail ? `: ${detail}` : ""}`;
  if (status === 408 || status === 409 || status === 429 || status >= 500) {
    return { ok: false, kind: "retryable", reason, retryAfterMs };
  }
  if (status === 401 || status === 403) {
    const hint = apiKeyEnv
      ? `check the key in $${apiKeyEnv}`
      : "set apiKeyEnv to the variable holding the key";
    return { ok: false, kind: "fatal", reason: `${endpoint} refused the request (${reason}): ${hint}` };
  }
  if (status === 404) {
    return {
      ok: false,
      kind: "fatal",
      reason: `${endpoint} answered ${reason}: check the URL and the model name`,
    };
  }
  return { ok: false, kind: "failed", reason };
}

/** What an error thrown by the `openai` client means for the run (timeouts and connection errors retry). */
export function classifyOpenAIError(
  e: unknown,
  timeoutMs: number,
  endpoint: string,
  apiKeyEnv: string | undefined,
  key: string | undefined,
): Attempt<never> {
  if (e instanceof OpenAI.APIConnectionTimeoutError) {
    return { ok: false, kind: "retryable", reason: `timed out after ${timeoutMs} ms` };
  }
  if (e instanceof OpenAI.APIConnectionError) {
    const cause = (e as { cause?: unknown }).cause;
    const detail = cause instanceof Error ? cause.message : e.message;
    return { ok: false, kind: "retryable", reason: `connection error: ${redact(detail, key)}` };
  }
  if (e instanceof OpenAI.APIError && typeof e.status === "number") {
    const headers = e.headers;
    const wait = retryAfterMs((name) => headers?.get(name));
    const detail = redact(e.message.replace(/^\d+\s*/, "").slice(0, 200), key);
    return classifyStatus(e.status, detail, wait, endpoint, apiKeyEnv);
  }
  return { ok: false, kind: "failed", reason: `malformed response: ${redact(String(e), key)}` };
}
