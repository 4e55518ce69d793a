import type { Attempt } from "./reliability.js";

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
