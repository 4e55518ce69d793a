import type { CausalLM } from "./model.js";
import { type ChatMessage, encodeConversation, type Tokenizer } from "./tokenizer.js";

export interface AnswerOptions {
  temperature: number;
  topP: number;
  maxNewTokens: number;
  seed: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * One answer per conversation (each ending with a user turn): the chat template applied, seeded
 * generation, the end-of-generation tokens of both tokenizer and model, whitespace trimmed.
 */
export async function answerConversations(
  model: CausalLM,
  tokenizer: Tokenizer,
  conversations: readonly (readonly ChatMessage[])[],
  options: AnswerOptions,
): Promise<string[]> {
  if (conversations.length === 0) return [];
  const samples = await model.generate(
    conversations.map((c) => encodeConversation(tokenizer, c)),
    {
      samplesPerPrompt: 1,
      temperature: options.temperature,
      topP: options.topP,
      maxNewTokens: options.maxNewTokens,
      eosTokenIds: [...new Set([...tokenizer.eosTokenIds, ...model.config.eosTokenIds])],
      seed: options.seed,
      tokenizer,
      ...(options.onProgress && { onProgress: options.onProgress }),
    },
  );
  return samples.map((s) => (s[0]!.text ?? tokenizer.decode(s[0]!.tokens)).trim());
}
