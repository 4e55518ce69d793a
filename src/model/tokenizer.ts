import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { readJsonFile, readTextFile } from "../util/files.js";

export interface ChatMessage {
  role: string;
  content: string;
}

export interface EncodeOptions {
  /** Add the tokenizer's own special tokens (e.g. BOS), as Hugging Face does by default. Default true. */
  addSpecialTokens?: boolean;
}

/**
 * A text <-> token-id mapping with its chat template. Loaded from a Hugging Face model directory
 * (`tokenizer.json` + `tokenizer_config.json`), or the built-in byte-level tokenizer.
 */
export interface Tokenizer {
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids the tokenizer does not know (e.g. a model's padded vocab rows) decode to nothing. */
  decode(ids: readonly number[]): string;
  readonly bosTokenId?: number;
  /** Every id that ends a generation: `eos_token` plus generation_config.json's `eos_token_id`. */
  readonly eosTokenIds: number[];
  /** Ids 0 .. vocabSize-1, added tokens included. */
  readonly vocabSize: number;
  readonly chatTemplate?: string;
  applyChatTemplate(messages: readonly ChatMessage[], options: { addGenerationPrompt: boolean }): string;
  /** The token string of each id (as stored in tokenizer.json), for exporters. */
  idToToken(id: number): string | undefined;
  /** The raw files, for exporters (GGUF) that re-encode the vocabulary. */
  readonly files: TokenizerFiles;
}

export interface TokenizerFiles {
  tokenizerJson: TokenizerJson;
  tokenizerConfig: Record<string, unknown>;
}

/** The parts of tokenizer.json that dno reads directly; everything else is passed through. */
export interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  model: { type: string; vocab: Record<string, number> | [string, number][]; merges?: unknown[] } & Record<
    string,
    unknown
  >;
  [key: string]: unknown;
}

/**
 * The prompt ids for a user prompt: the chat template applied (with the generation prompt) when the
 * tokenizer has one, the plain text with the tokenizer's special tokens otherwise.
 */
export function encodePrompt(tokenizer: Tokenizer, prompt: string): number[] {
  return encodeConversation(tokenizer, [{ role: "user", content: prompt }]);
}

/**
 * The prompt ids of a conversation ending with a user turn, for the assistant's next answer: the chat
 * template applied when the tokenizer has one; otherwise the turns' texts joined by newlines.
 */
export function encodeConversation(tokenizer: Tokenizer, messages: readonly ChatMessage[]): number[] {
  if (tokenizer.chatTemplate === undefined)
    return tokenizer.encode(messages.map((m) => m.content).join("\n"));
  const text = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
  return tokenizer.encode(text, { addSpecialTokens: false });
}

/** Prompt tokens decoded before a response so that decoders which treat a sequence's start specially see it. */
const RESPONSE_CONTEXT_TOKENS = 8;

/**
 * The text of a response alone, such that prompt text + response text reads as the decoded whole (as
 * vLLM and llama.cpp detokenize): SentencePiece-style decoders drop the leading space of a sequence's
 * first word, so decoding the response ids alone loses the space between prompt and response. The last
 * few prompt ids are decoded with the response and their own text is cut off.
 */
export function decodeResponse(
  tokenizer: Tokenizer,
  promptIds: readonly number[],
  responseIds: readonly number[],
): string {
  if (responseIds.length === 0) return "";
  const context = promptIds.slice(-RESPONSE_CONTEXT_TOKENS);
  if (context.length === 0) return tokenizer.decode(responseIds);
  const prefix = tokenizer.decode(context);
  const whole = tokenizer.decode([...context, ...responseIds]);
  // A character split between the prompt's last bytes and the response's first belongs to the response.
  let shared = 0;
  while (shared < prefix.length && prefix[shared] === whole[shared]) shared++;
  return whole.slice(shared);
}

/**
 * The ids of a response's text as a continuation of its prompt, the inverse of decodeResponse: the text
 * is encoded after the prompt's last few tokens' text, whose ids are then dropped (a SentencePiece-style
 * tokenizer encodes a text's first word as if a space preceded it). Where prompt and response share a
 * token across their boundary, the response is encoded alone.
 */
export function encodeResponse(
  tokenizer: Tokenizer,
  promptIds: readonly number[],
  response: string,
): number[] {
  const plain = () => tokenizer.encode(response, { addSpecialTokens: false });
  const context = tokenizer.decode(promptIds.slice(-RESPONSE_CONTEXT_TOKENS));
  if (context === "" || response === "") return plain();
  const head = tokenizer.encode(context, { addSpecialTokens: false });
  const whole = tokenizer.encode(context + response, { addSpecialTokens: false });
  const sameHead = head.length < whole.length && head.every((id, i) => whole[i] === id);
  return sameHead ? whole.slice(head.length) : plain();
}

/** Loads `dir/tokenizer.json` and `dir/tokenizer_config.json` (and `generation_config.json` if present). */
export function loadTokenizer(dir: string): Tokenizer {
  const tokenizerJson = readJsonFile(join(dir, "tokenizer.json")) as TokenizerJson;
  const configPath = join(dir, "tokenizer_config.json");
  const tokenizerConfig = existsSync(configPath) ? (readJsonFile(configPath) as Record<string, unknown>) : {};
  const templatePath = join(dir, "chat_template.jinja");
  if (existsSync(templatePath)) tokenizerConfig.chat_template = readTextFile(templatePath);
  const generationPath = join(dir, "generation_config.json");
  const generationEos = existsSync(generationPath)
    ? (readJsonFile(generationPath) as { eos_token_id?: number | number[] }).eos_token_id
    : undefined;
  return fromFiles({ tokenizerJson, tokenizerConfig }, dir, generationEos);
}

/** Builds a tokenizer from in-memory tokenizer.json / tokenizer_config.json objects. */
export function tokenizerFromFiles(files: TokenizerFiles): Tokenizer {
  return fromFiles(files, "<memory>", undefined);
}

/** Writes tokenizer.json and tokenizer_config.json into `dir` (created if missing). */
export function saveTokenizer(tokenizer: Tokenizer, dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileAtomic(join(dir, "tokenizer.json"), `${JSON.stringify(tokenizer.files.tokenizerJson, null, 2)}\n`);
  writeFileAtomic(
    join(dir, "tokenizer_config.json"),
    `${JSON.stringify(tokenizer.files.tokenizerConfig, null, 2)}\n`,
  );
}

/** A tokenizer.json that built but fails at work (a malformed part) is a DnoError naming the file. */
function guarded<T>(where: string, what: string, work: () => T): T {
  try {
    return work();
  } catch (e) {
    if (e instanceof DnoError) throw e;
    throw new DnoError(`${where}/tokenizer.json: cannot ${what}: ${(e as Error).message}`);
  }
}

function fromFiles(
  files: TokenizerFiles,
  where: string,
  generationEos: number | number[] | undefined,
): Tokenizer {
  const { tokenizerJson, tokenizerConfig } = files;
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(tokenizerJson, tokenizerConfig);
  } catch (e) {
    throw new DnoError(`${where}/tokenizer.json: cannot build the tokenizer: ${(e as Error).message}`);
  }
  const ids = [...hf.get_vocab(true).values()];
  if (ids.length === 0) throw new DnoError(`${where}/tokenizer.json: the vocabulary is empty`);
  const vocabSize = ids.reduce((a, b) => Math.max(a, b), 0) + 1;
  const tokenId = (key: string): number | undefined => {
    const text = specialTokenText(tokenizerConfig[key]);
    if (text === undefined) return undefined;
    const id = hf.token_to_id(text);
    if (id === undefined) {
      throw new DnoError(`${where}/tokenizer_config.json: ${key}: "${text}" is not in the vocabulary`);
    }
    return id;
  };
  const bosTokenId = tokenId("bos_token");
  const eos = new Set<number>();
  const eosId = tokenId("eos_token");
  if (eosId !== undefined) eos.add(eosId);
  for (const id of generationEos === undefined ? [] : [generationEos].flat()) {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new DnoError(
        `${where}/generation_config.json: eos_token_id ${JSON.stringify(id)} is not a token id (0..${vocabSize - 1})`,
      );
    }
    eos.add(id);
  }

  const chatTemplate = pickChatTemplate(tokenizerConfig.chat_template, where);
  const template = chatTemplate === undefined ? undefined : parseTemplate(chatTemplate, where);
  const decodeSpaces = tokenizerConfig.clean_up_tokenization_spaces === true;
  const specials = {
    bos_token: specialTokenText(tokenizerConfig.bos_token) ?? "",
    eos_token: specialTokenText(tokenizerConfig.eos_token) ?? "",
    pad_token: specialTokenText(tokenizerConfig.pad_token) ?? "",
    unk_token: specialTokenText(tokenizerConfig.unk_token) ?? "",
  };

  return {
    encode: (text, options = {}) =>
      guarded(
        where,
        "encode",
        () => hf.encode(text, { add_special_tokens: options.addSpecialTokens ?? true }).ids,
      ),
    decode: (ids) => {
      const known = ids.filter((id) => Number.isInteger(id) && id >= 0 && id < vocabSize);
      if (known.length === 0) return "";
      return guarded(where, "decode", () => hf.decode(known, { clean_up_tokenization_spaces: decodeSpaces }));
    },
    bosTokenId,
    eosTokenIds: [...eos],
    vocabSize,
    chatTemplate,
    applyChatTemplate: (messages, { addGenerationPrompt }) => {
      if (template === undefined) {
        throw new DnoError(
          `${where}: the tokenizer has no chat template (tokenizer_config.json: chat_template)`,
        );
      }
      try {
        return template.render({
          ...specials,
          messages,
          add_generation_prompt: addGenerationPrompt,
        });
      } catch (e) {
        throw new DnoError(`${where}/tokenizer_config.json: chat_template: ${(e as Error).message}`);
      }
    },
    idToToken: (id) => hf.id_to_token(id),
    files,
  };
}

/** tokenizer_config.json writes special tokens as a string or as an AddedToken object `{ content }`. */
function specialTokenText(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (
    value !== null &&
    typeof value === "object" &&
    typeof (value as { content?: unknown }).content === "string"
  ) {
    return (value as { content: string }).content;
  }
  return undefined;
}

/** `chat_template` is a string, or a list of `{ name, template }` of which "default" is the chat one. */
function pickChatTemplate(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "string") return value;
  if (Array.isArray(value)) {
    const named = value as { name?: unknown; template?: unknown }[];
    const chosen = named.find((t) => t.name === "default") ?? named[0];
    if (chosen !== undefined && typeof chosen.template === "string") return chosen.template;
  }
  throw new DnoError(
    `${where}/tokenizer_config.json: chat_template: expected a string or [{ name, template }]`,
  );
}

function parseTemplate(source: string, where: string): Template {
  try {
    return new Template(source);
  } catch (e) {
    throw new DnoError(`${where}/tokenizer_config.json: chat_template: ${(e as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------------------
// The built-in byte-level tokenizer, for models trained from scratch.

/** Ids 0..255 are the bytes themselves; the special tokens follow. */
export const BYTE_SPECIAL_TOKENS = ["<bos>", "<eos>", "<pad>"] as const;
export const BYTE_TOKENIZER_VOCAB_SIZE = 256 + BYTE_SPECIAL_TOKENS.length;

/**
 * GPT-2's reversible byte -> printable-character table: printable Latin-1 bytes map to themselves, the
 * others to U+0100 onwards in byte order. Byte-level BPE vocabularies (GPT-2, Llama 3, Qwen2) spell
 * their tokens in these characters.
 */
export function byteToUnicode(): string[] {
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[b] = String.fromCodePoint(printable ? b : next++);
  }
  return table;
}

/**
 * The built-in tokenizer's files: a byte-level BPE without merges (one token per UTF-8 byte), BOS added
 * on encode, as a standard tokenizer.json that Hugging Face tokenizers and llama.cpp (via GGUF) load.
 */
export function byteTokenizerFiles(options: { chatTemplate?: string } = {}): TokenizerFiles {
  const vocab: Record<string, number> = {};
  byteToUnicode().forEach((ch, b) => {
    vocab[ch] = b;
  });
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: false, use_regex: false };
  const [bos, eos, pad] = BYTE_SPECIAL_TOKENS;
  const tokenizerJson: TokenizerJson = {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: BYTE_SPECIAL_TOKENS.map((content, i) => ({
      id: 256 + i,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [256], tokens: [bos] } },
    },
    decoder: byteLevel,
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: [],
    },
  };
  const tokenizerConfig: Record<string, unknown> = {
    tokenizer_class: "PreTrainedTokenizerFast",
    bos_token: bos,
    eos_token: eos,
    pad_token: pad,
    add_bos_token: true,
    add_eos_token: false,
    clean_up_tokenization_spaces: false,
    model_max_length: 1_000_000,
  };
  if (options.chatTemplate !== undefined) tokenizerConfig.chat_template = options.chatTemplate;
  return { tokenizerJson, tokenizerConfig };
}

/** The built-in byte-level tokenizer (see byteTokenizerFiles). */
export function byteTokenizer(options: { chatTemplate?: string } = {}): Tokenizer {
  return tokenizerFromFiles(byteTokenizerFiles(options));
}
