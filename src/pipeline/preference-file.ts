/**
 * A preference file in TRL's format, as `dno train` reads it: `prompt`, `chosen`, `rejected`, plain
 * text or conversational (lists of {role, content}); optionally the token ids and the reference
 * log-probs of dno's contract (pairs.trl.jsonl). Rows without ids are tokenised the way dno samples:
 * the prompt through the chat template (when the tokenizer has one) with the generation prompt, each
 * response as its text plus EOS. Rows without reference log-probs get them from a reference policy.
 */
import { z } from "zod";
import { atLine } from "../util/errors.js";
import { readInputRecords } from "../util/jsonl.js";
import {
  encodePromptText,
  encodeResponse,
  type Policy,
  type TokenExample,
  tokenSequenceLogprobs,
} from "./policy.js";
import type { TrlRow } from "./records.js";

const messageSchema = z.strictObject({ role: z.string(), content: z.string() });
const textOrMessages = z.union([z.string(), z.array(messageSchema).min(1)]);
const ids = z.array(z.number().int().min(0));

const preferenceLineSchema = z.object({
  prompt: textOrMessages,
  /** A system message before a plain-text prompt (dno's reward-augmented pairs). */
  system: z.string().optional(),
  chosen: textOrMessages,
  rejected: textOrMessages,
  prompt_ids: ids.optional(),
  chosen_ids: ids.optional(),
  rejected_ids: ids.optional(),
  ref_chosen_logps: z.number().optional(),
  ref_rejected_logps: z.number().optional(),
  anchor_chosen_logps: z.number().optional(),
  anchor_rejected_logps: z.number().optional(),
  target: z.number().min(0).max(1).optional(),
  chosen_win_rate: z.number().optional(),
  rejected_win_rate: z.number().optional(),
  explore_ids: ids.optional(),
  ref_explore_logps: z.number().optional(),
});
type PreferenceLine = z.infer<typeof preferenceLineSchema>;

export interface ReadPreferencesOptions {
  /** Computes missing reference log-probs (pi_t for DNO-Prct; a fixed pi_ref for DPO). */
  reference: () => Policy;
}

/** The file's rows in the trainer's form; one clear error naming file:line for a bad row. */
export function readPreferenceFile(file: string, policy: Policy, options: ReadPreferencesOptions): TrlRow[] {
  const records = readInputRecords(file, preferenceLineSchema, "preference pairs");
  const vocab = policy.model.config.vocabSize;
  const rows = records.map(({ line, value }) => toRow(value, policy, vocab, (m) => atLine(file, line, m)));
  const missing = records.map(({ line, value: l }, i) =>
    hasBoth(l.ref_chosen_logps, l.ref_rejected_logps, line, file) ? -1 : i,
  );
  const todo = missing.filter((i) => i >= 0);
  if (todo.length > 0) {
    const reference = options.reference();
    const examples: TokenExample[] = [
      ...todo.map((i) => ({ prompt: rows[i]!.prompt_ids, response: rows[i]!.chosen_ids })),
      ...todo.map((i) => ({ prompt: rows[i]!.prompt_ids, response: rows[i]!.rejected_ids })),
    ];
    const lp = tokenSequenceLogprobs(reference, examples);
    todo.forEach((i, k) => {
      rows[i]!.ref_chosen_logps = lp[k]!;
      rows[i]!.ref_rejected_logps = lp[todo.length + k]!;
    });
  }
  return rows;
}

function hasBoth(a: number | undefined, b: number | undefined, line: number, file: string): boolean {
  if ((a === undefined) !== (b === undefined)) {
    throw atLine(file, line, "give both ref_chosen_logps and ref_rejected_logps, or neither");
  }
  return a !== undefined;
}

function toRow(line: PreferenceLine, policy: Policy, vocab: number, fail: (m: string) => Error): TrlRow {
  const given = [line.prompt_ids, line.chosen_ids, line.rejected_ids].filter((x) => x !== undefined).length;
  if (given !== 0 && given !== 3) throw fail("give all of prompt_ids, chosen_ids, rejected_ids, or none");
  const promptText = typeof line.prompt === "string" ? line.prompt : undefined;
  if (line.system !== undefined && promptText === undefined) {
    throw fail(
      '"system" goes with a plain-text prompt; a conversational prompt holds its own system message',
    );
  }
  const chosen = responseText(line.chosen, "chosen", fail);
  const rejected = responseText(line.rejected, "rejected", fail);
  let promptIds: number[];
  let chosenIds: number[];
  let rejectedIds: number[];
  if (given === 3) {
    [promptIds, chosenIds, rejectedIds] = [line.prompt_ids!, line.chosen_ids!, line.rejected_ids!];
  } else {
    promptIds =
      promptText !== undefined
        ? encodePromptText(policy, {
            user: promptText,
            ...(line.system !== undefined && { system: line.system }),
          })
        : chatPrompt(policy, line.prompt as Message[], fail);
    chosenIds = encodeResponse(policy, chosen, promptIds);
    rejectedIds = encodeResponse(policy, rejected, promptIds);
  }
  if (promptIds.length === 0) throw fail("the prompt has no tokens");
  for (const [name, xs] of [
    ["prompt_ids", promptIds],
    ["chosen_ids", chosenIds],
    ["rejected_ids", rejectedIds],
  ] as const) {
    const bad = xs.find((t) => t >= vocab);
    if (bad !== undefined)
      throw fail(`${name}: token ${bad} is outside the model's vocabulary (0..${vocab - 1})`);
  }
  return {
    prompt: promptText ?? JSON.stringify(line.prompt),
    ...(line.system !== undefined && { system: line.system }),
    chosen,
    rejected,
    prompt_ids: promptIds,
    chosen_ids: chosenIds,
    rejected_ids: rejectedIds,
    ref_chosen_logps: line.ref_chosen_logps ?? Number.NaN,
    ref_rejected_logps: line.ref_rejected_logps ?? Number.NaN,
    ...(line.anchor_chosen_logps !== undefined && { anchor_chosen_logps: line.anchor_chosen_logps }),
    ...(line.anchor_rejected_logps !== undefined && { anchor_rejected_logps: line.anchor_rejected_logps }),
    ...(line.target !== undefined && { target: line.target }),
    ...(line.chosen_win_rate !== undefined && { chosen_win_rate: line.chosen_win_rate }),
    ...(line.rejected_win_rate !== undefined && { rejected_win_rate: line.rejected_win_rate }),
    ...(line.explore_ids !== undefined && { explore_ids: line.explore_ids }),
    ...(line.ref_explore_logps !== undefined && { ref_explore_logps: line.ref_explore_logps }),
  };
}

type Message = z.infer<typeof messageSchema>;

/** A conversational response is its one assistant message (TRL's conversational preference format). */
function responseText(value: string | Message[], key: string, fail: (m: string) => Error): string {
  if (typeof value === "string") return value;
  if (value.length !== 1 || value[0]!.role !== "assistant") {
    throw fail(`"${key}" must be a string or one {"role": "assistant", "content": ...} message`);
  }
  return value[0]!.content;
}

function chatPrompt(policy: Policy, messages: Message[], fail: (m: string) => Error): number[] {
  const { tokenizer } = policy;
  if (tokenizer.chatTemplate === undefined) {
    throw fail('a conversational "prompt" needs a chat template (the model\'s tokenizer has none)');
  }
  const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  return tokenizer.encode(text, { addSpecialTokens: false });
}
