/**
 * The OpenAI request bodies `dno serve` accepts, validated: what a field may hold is what OpenAI's
 * API reference allows, minus what the engine cannot do (top alternatives in logprobs, echo, best_of,
 * penalties, logit_bias). `top_k` and `return_token_ids` are the extensions vLLM also takes.
 */
import { z } from "zod";

const stop = z.union([z.string(), z.array(z.string()).max(4)]).nullish();

const sampling = {
  model: z.string().min(1),
  n: z.number().int().min(1).max(128).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** vLLM's extension: -1 or 0 = off. */
  top_k: z.number().int().min(-1).nullish(),
  stop,
  seed: z.number().int().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  /** vLLM's extension: each choice carries `token_ids`, the response carries `prompt_token_ids`. */
  return_token_ids: z.boolean().nullish(),
  // Accepted at their no-op values only.
  frequency_penalty: z.literal(0).nullish(),
  presence_penalty: z.literal(0).nullish(),
  logit_bias: z.record(z.string(), z.never()).nullish(),
  user: z.string().nullish(),
};

const tokenIds = z.array(z.number().int().min(0)).min(1);

export const completionRequestSchema = z.object({
  ...sampling,
  prompt: z.union([z.string(), z.array(z.string()).min(1), tokenIds, z.array(tokenIds).min(1)]),
  max_tokens: z.number().int().min(1).nullish(),
  /** Only 0: the sampled tokens' log-probs, no alternatives. */
  logprobs: z.literal(0, { error: "only logprobs: 0 is supported (no top alternatives)" }).nullish(),
  echo: z.literal(false, { error: "echo is not supported" }).nullish(),
  best_of: z.literal(1, { error: "best_of is not supported" }).nullish(),
  suffix: z.null({ error: "suffix is not supported" }).optional(),
});
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

const content = z.union([
  z.string(),
  z.array(
    z.object({
      type: z.literal("text", { error: "only text content parts are supported" }),
      text: z.string(),
    }),
  ),
]);

export const chatRequestSchema = z.object({
  ...sampling,
  messages: z.array(z.object({ role: z.enum(["system", "developer", "user", "assistant"]), content })).min(1),
  max_tokens: z.number().int().min(1).nullish(),
  max_completion_tokens: z.number().int().min(1).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.literal(0, { error: "only top_logprobs: 0 is supported (no alternatives)" }).nullish(),
});
export type ChatRequest = z.infer<typeof chatRequestSchema>;

/** An OpenAI-style error body. */
export function errorBody(
  message: string,
  type: string,
  param: string | null = null,
  code: string | null = null,
) {
  return { error: { message, type, param, code } };
}

/** The field path and message of a zod error, as OpenAI reports a bad parameter. */
export function describeRequestError(error: z.ZodError): { message: string; param: string | null } {
  const issue = error.issues[0]!;
  const param = issue.path.length > 0 ? issue.path.join(".") : null;
  let message = issue.message;
  if (issue.code === "invalid_type" && issue.input === undefined) message = "is required";
  return { message: param ? `${param}: ${message}` : message, param };
}
