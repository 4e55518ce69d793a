/**
 * The pipeline's view of a policy: a CausalLM and its tokenizer, spoken to in text. Everything the
 * pipeline asks of src/model and src/train goes through here (load, save, sample, score, train).
 */
import { existsSync, mkdirSync } from "node:fs";
import { dirname, relative } from "node:path";
import { logSumExp } from "../core/prob.js";
import type { ConditionedPrompt } from "../core/reward-augmented.js";
import { Rng } from "../core/rng.js";
import type { Answerer } from "../eval/benchmark-run.js";
import { parseConfig, readConfig } from "../model/config.js";
import { answerConversations } from "../model/conversation.js";
import { type GenerateOptions, generate } from "../model/generate.js";
import { exportGguf, ggufSource } from "../model/gguf.js";
import { LoraAdapter, type LoraOptions, toLoraConfig } from "../model/lora.js";
import { generateMixture } from "../model/mixture.js";
import { CausalLM } from "../model/model.js";
import { SafetensorsReader, writeSafetensors } from "../model/safetensors.js";
import {
  byteTokenizer,
  encodeResponse as continuationIds,
  encodeConversation,
  encodePrompt,
  loadTokenizer,
  saveTokenizer,
  type Tokenizer,
} from "../model/tokenizer.js";
import { AdamW, NonFiniteError } from "../train/adamw.js";
import { learningRate } from "../train/schedule.js";
import { trainStep } from "../train/step.js";
import { DnoError } from "../util/errors.js";
import { parseJsonText } from "../util/files.js";
import type { RunConfig } from "./config.js";
import type { TrainLogRow } from "./records.js";

export interface Policy {
  model: CausalLM;
  tokenizer: Tokenizer;
}

/**
 * What a policy is prompted with: a user prompt, or one conditioned by a system message before it
 * (reward-augmented DPO's goal; src/core/reward-augmented.ts).
 */
export type PolicyPrompt = string | ConditionedPrompt;

export interface TextExample {
  prompt: PolicyPrompt;
  response: string;
}

/** A (prompt, response) example in token ids: what the model scores and trains on. */
export interface TokenExample {
  prompt: number[];
  response: number[];
}

/** What turns text into ids and back: a policy's tokenizer, without its weights. */
export type PolicyText = Pick<Policy, "tokenizer">;

export function loadPolicy(dir: string): Policy {
  return { model: CausalLM.load(dir), tokenizer: loadTokenizer(dir) };
}

export function loadPolicyText(dir: string): PolicyText {
  return { tokenizer: loadTokenizer(dir) };
}

/** Writes the policy as an F32 GGUF (llama.cpp's `llama` architecture) with its tokenizer. */
export function exportPolicyGguf(policy: Policy, path: string): void {
  exportGguf(path, ggufSource(policy.model.config, policy.model.params), policy.tokenizer, { dtype: "f32" });
}

/** A fresh Llama-family model over the built-in byte-level tokenizer. */
export function initPolicy(arch: NonNullable<RunConfig["model"]["from_scratch"]>, seed: number): Policy {
  const tokenizer = byteTokenizer();
  const heads = arch.num_attention_heads;
  const config = {
    model_type: "llama",
    architectures: ["LlamaForCausalLM"],
    vocab_size: tokenizer.vocabSize,
    hidden_size: arch.hidden_size,
    intermediate_size: arch.intermediate_size,
    num_hidden_layers: arch.num_hidden_layers,
    num_attention_heads: heads,
    num_key_value_heads: arch.num_key_value_heads ?? heads,
    max_position_embeddings: arch.max_position_embeddings,
    rope_theta: arch.rope_theta,
    rms_norm_eps: 1e-5,
    tie_word_embeddings: arch.tie_word_embeddings,
    bos_token_id: tokenizer.bosTokenId,
    eos_token_id: tokenizer.eosTokenIds[0],
  };
  const model = CausalLM.init(parseConfig(config, "model.from_scratch"), seed);
  return { model, tokenizer };
}

/** What the context check needs of the starting policy, without loading its weights. */
export interface PolicyShape {
  /** max_position_embeddings */
  context: number;
  promptTokens(prompt: PolicyPrompt): number;
  /** Tokens of a response as trained on: its own and the closing EOS. */
  responseTokens(response: string): number;
}

export function policyShape(model: RunConfig["model"]): PolicyShape {
  const tokenizer = model.path ? loadTokenizer(model.path) : byteTokenizer();
  const context = model.path
    ? readConfig(model.path).maxPositionEmbeddings
    : model.from_scratch!.max_position_embeddings;
  return {
    context,
    promptTokens: (prompt) => encodePromptText({ tokenizer }, prompt).length,
    responseTokens: (response) => tokenizer.encode(response, { addSpecialTokens: false }).length + 1,
  };
}

/** From now on training updates a fresh LoRA adapter (PEFT's init, from `seed`) alone; the base is frozen. */
export function startLoraAdapter(policy: Policy, options: LoraOptions, seed: number): void {
  const { model } = policy;
  model.attachAdapter(LoraAdapter.init(model.config, toLoraConfig(options), seed), { train: true });
}

/**
 * Writes the policy to `dir` with its tokenizer: a full checkpoint, or, while it trains an adapter, an
 * adapter checkpoint over `baseDir` (the adapter in PEFT's format, base_model_name_or_path = baseDir
 * relative to dir), after which the adapter is merged, so that the policy in memory is what `dir` loads as.
 */
export function savePolicy(policy: Policy, dir: string, baseDir?: string): void {
  const { model } = policy;
  if (model.adapter) {
    if (baseDir === undefined)
      throw new Error("savePolicy: a policy with an adapter needs its base directory");
    model.adapter.save(dir, relative(dir, baseDir));
    model.mergeAdapter();
  } else {
    model.save(dir);
  }
  saveTokenizer(policy.tokenizer, dir);
}

export function policyWeightsSha256(policy: Policy): string {
  return policy.model.weightsSha256();
}

/** Token ids of a (prompt, response) example; the response ends with EOS. */
export function encodeExample(policy: Policy, e: TextExample): TokenExample {
  const prompt = encodePromptText(policy, e.prompt);
  return { prompt, response: encodeResponse(policy, e.response, prompt) };
}

/**
 * A prompt's ids, as dno samples it: the chat template applied when there is one (a system message
 * first where the prompt has one), else the messages' texts joined by newlines (`encodeConversation`).
 */
export function encodePromptText(policy: PolicyText, prompt: PolicyPrompt): number[] {
  const { tokenizer } = policy;
  if (typeof prompt === "string") return encodePrompt(tokenizer, prompt);
  const user = { role: "user", content: prompt.user };
  return prompt.system === undefined
    ? encodePrompt(tokenizer, prompt.user)
    : encodeConversation(tokenizer, [{ role: "system", content: prompt.system }, user]);
}

/**
 * A complete response's ids: its text's tokens, then EOS. Given the prompt's ids, the text is encoded
 * as their continuation (the inverse of how sampled text is decoded; src/model/tokenizer.ts).
 */
export function encodeResponse(
  policy: PolicyText,
  text: string,
  promptIds: readonly number[] = [],
): number[] {
  return responseIds(policy, continuationIds(policy.tokenizer, promptIds, text), true);
}

/**
 * The ids a response is scored and trained on: its tokens, closed by EOS when it ended with one (a
 * response cut at the token limit is scored as cut). With several EOS ids, the first stands for any.
 */
export function responseIds(policy: PolicyText, tokens: readonly number[], finished: boolean): number[] {
  return finished ? [...tokens, policy.tokenizer.eosTokenIds[0]!] : [...tokens];
}

/** Tokens the model predicts for a response: its own tokens and the closing EOS. */
export function responseTokenCount(policy: Policy, e: TextExample): number {
  return encodeExample(policy, e).response.length;
}

const LOGPROB_CHUNK = 64;

/** log pi(response | prompt) for each example (no gradient), in chunks. */
export function sequenceLogprobs(
  policy: Policy,
  items: readonly TextExample[],
  progress?: (done: number, total: number) => void,
): Float64Array {
  const out = new Float64Array(items.length);
  for (let i = 0; i < items.length; i += LOGPROB_CHUNK) {
    const chunk = items.slice(i, i + LOGPROB_CHUNK).map((e) => encodeExample(policy, e));
    out.set(policy.model.sequenceLogprobs(chunk), i);
    progress?.(Math.min(i + LOGPROB_CHUNK, items.length), items.length);
  }
  return out;
}

/** log pi(response | prompt) for examples already in token ids, in chunks. */
export function tokenSequenceLogprobs(
  policy: Policy,
  items: readonly TokenExample[],
  progress?: (done: number, total: number) => void,
): Float64Array {
  const out = new Float64Array(items.length);
  for (let i = 0; i < items.length; i += LOGPROB_CHUNK) {
    out.set(policy.model.sequenceLogprobs(items.slice(i, i + LOGPROB_CHUNK)), i);
    progress?.(Math.min(i + LOGPROB_CHUNK, items.length), items.length);
  }
  return out;
}

export interface SampleOptions {
  samplesPerPrompt: number;
  temperature: number;
  topP: number;
  topK: number;
  maxNewTokens: number;
  seed: number;
  /** The index of prompts[0] when a prompt set is sampled in parts (seeds follow the whole set). */
  firstPromptIndex?: number;
}

export interface SampledText {
  text: string;
  /** The response's token ids as sampled (the closing EOS is not one of them). */
  tokens: number[];
  /** log pi(tokens | prompt) at temperature 1; null where a remote server did not report it. */
  logprob: number | null;
  /** Ended with EOS (false: cut at maxNewTokens). */
  finished: boolean;
}

/** The engine's options for sampling `options`, decoded and ended by `tokenizer`. */
function generateOptions(
  tokenizer: Tokenizer,
  options: SampleOptions,
  progress: ((done: number, total: number) => void) | undefined,
): GenerateOptions {
  const { samplesPerPrompt, temperature, topP, topK, maxNewTokens, seed, firstPromptIndex } = options;
  return {
    samplesPerPrompt,
    temperature,
    topP,
    topK,
    maxNewTokens,
    seed,
    eosTokenIds: tokenizer.eosTokenIds,
    tokenizer,
    ...(firstPromptIndex !== undefined && { firstPromptIndex }),
    ...(progress && { onProgress: progress }),
  };
}

/** K samples per prompt; a sample depends only on (seed, prompt index, sample index). */
export async function sampleResponses(
  policy: Policy,
  prompts: readonly PolicyPrompt[],
  options: SampleOptions,
  progress?: (done: number, total: number) => void,
): Promise<SampledText[][]> {
  const results = await sampleSteps(policy, prompts, options, progress);
  return results.map((samples) =>
    samples.map((s) => ({
      text: s.text,
      tokens: s.tokens,
      logprob: s.logprob,
      finished: s.finishReason === "eos",
    })),
  );
}

export interface SampledStep {
  text: string;
  /** The token ids as sampled: up to and including a stop string's token; never the closing EOS. */
  tokens: number[];
  logprob: number;
  /** eos: the response ended; stop: a stop string was reached (the text ends before it); length: cut. */
  finishReason: "eos" | "stop" | "length";
}

/** As sampleResponses, and a sample also ends at any of `stopStrings` (a reasoning step's delimiter). */
export async function sampleSteps(
  policy: Policy,
  prompts: readonly PolicyPrompt[],
  options: SampleOptions & { stopStrings?: string[] },
  progress?: (done: number, total: number) => void,
): Promise<SampledStep[][]> {
  const { tokenizer } = policy;
  const results = await generate(
    policy.model,
    prompts.map((p) => encodePromptText(policy, p)),
    {
      ...generateOptions(tokenizer, options, progress),
      ...(options.stopStrings && { stopStrings: options.stopStrings }),
    },
  );
  return results.map((samples) =>
    samples.map((s) => ({
      text: s.text!,
      tokens: s.tokens,
      logprob: s.logprob,
      finishReason: s.finishReason,
    })),
  );
}

/** The policy answering conversations (MT-Bench's two turns, Arena-Hard's prompts) for `eval.benchmark`. */
export function policyAnswerer(
  policy: Policy,
  options: { topP: number; maxNewTokens: number; seed: number },
  progress?: (label: string, done: number, total: number) => void,
): Answerer {
  return (conversations, temperature, label) =>
    answerConversations(policy.model, policy.tokenizer, conversations, {
      ...options,
      temperature,
      ...(progress && { onProgress: (done: number, total: number) => progress(label, done, total) }),
    });
}

/**
 * The loss of a batch as a function of its sequence log-probs, plus the batch's mean reward margin;
 * `groupOf` as in SequenceLoss (the margin is read from the last call, which sees every log-prob).
 */
export interface BatchLoss {
  (seqLogprobs: Float64Array): { loss: number; grad: Float64Array; margin: number | null };
  groupOf?: (example: number) => number;
}

/**
 * Where weights, optimizer state, step and the log so far are saved (atomically, every `everySeconds`;
 * 0: after every step) and resumed from: a kill loses at most that much training. The caller removes
 * `file` once the trained checkpoint is written.
 */
export interface TrainResume {
  file: string;
  everySeconds: number;
}

export interface TrainOptions<U> {
  lr: number;
  batch_size: number;
  epochs: number;
  warmup_steps: number;
  weight_decay: number;
  grad_clip: number;
  seed: number;
  /** Activation recomputation (CausalLM.recompute) while training. */
  recompute?: boolean;
  /** Names the training in errors (a stage name). */
  stage?: string;
  resume?: TrainResume;
  /** The examples of a batch of units, in the layout the loss expects. */
  examplesOf: (batch: readonly U[]) => TokenExample[];
  lossOf: (batch: readonly U[]) => BatchLoss;
  progress?: (done: number, total: number) => void;
}

/**
 * AdamW over shuffled batches of units (an SFT example, or a preference pair), `epochs` passes
 * (a fractional last pass takes the first part of its shuffle). Linear warmup, then linear decay to 0.
 * The data order depends only on (seed, epoch), so a resumed run takes the same batches as an
 * uninterrupted one and ends with the same weights. A NaN or infinite loss or gradient stops training
 * (a DnoError naming the step) before that step changes anything.
 */
export function trainSteps<U>(policy: Policy, units: readonly U[], options: TrainOptions<U>): TrainLogRow[] {
  const perEpoch = Math.ceil(units.length / options.batch_size);
  const total = Math.max(1, Math.round(perEpoch * options.epochs));
  if (options.recompute) policy.model.recompute = true;
  const optimizer = new AdamW(policy.model, {
    weightDecay: options.weight_decay,
    maxGradNorm: options.grad_clip,
  });
  const key = trainingKey(units.length, total, options);
  const { resume } = options;
  const resumed = resume ? loadTrainProgress(resume.file, key, optimizer) : undefined;
  const log: TrainLogRow[] = resumed?.log ?? [];
  let lastSave = performance.now();
  let savedStep = log.length;
  let order: U[] = [];
  for (let step = log.length; step < total; step++) {
    const k = step % perEpoch;
    if (k === 0 || step === log.length) {
      order = Rng.derive(options.seed, "epoch", Math.floor(step / perEpoch)).shuffle([...units]);
    }
    const batch = order.slice(k * options.batch_size, (k + 1) * options.batch_size);
    const examples = options.examplesOf(batch);
    const lossFn = options.lossOf(batch);
    let margin: number | null = null;
    const lr = learningRate(step, {
      lr: options.lr,
      warmupSteps: options.warmup_steps,
      totalSteps: total,
      decay: "linear",
    });
    let loss: number;
    try {
      ({ loss } = trainStep(
        policy.model,
        optimizer,
        [
          {
            examples,
            loss: Object.assign(
              (lp: Float64Array) => {
                const r = lossFn(lp);
                margin = r.margin;
                return { loss: r.loss, grad: r.grad };
              },
              { groupOf: lossFn.groupOf },
            ),
          },
        ],
        lr,
      ));
    } catch (e) {
      if (!(e instanceof NonFiniteError)) throw e;
      const kept =
        resume && savedStep > 0
          ? `the last good state (after step ${savedStep}) is kept in ${resume.file}`
          : "the stage's input checkpoint is kept";
      throw new DnoError(
        `${options.stage ?? "training"}: training stopped at step ${step + 1} of ${total}: ${e.message}; ` +
          `no update was applied, ${kept} (lower the learning rate, or check the data)`,
      );
    }
    log.push({ step: step + 1, lr, loss, margin });
    options.progress?.(step + 1, total);
    if (resume && performance.now() - lastSave >= resume.everySeconds * 1000 && step + 1 < total) {
      saveTrainProgress(resume.file, key, optimizer, log);
      lastSave = performance.now();
      savedStep = log.length;
    }
  }
  return log;
}

/** What must match for saved progress to be resumed: the same units, schedule and seed. */
function trainingKey<U>(units: number, total: number, o: TrainOptions<U>): string {
  const { lr, batch_size, epochs, warmup_steps, weight_decay, grad_clip, seed, stage } = o;
  return JSON.stringify({
    stage,
    units,
    total,
    lr,
    batch_size,
    epochs,
    warmup_steps,
    weight_decay,
    grad_clip,
    seed,
  });
}

/** What trains (every weight, or a LoRA adapter alone) and its AdamW moments, with the log so far. */
function saveTrainProgress(file: string, key: string, optimizer: AdamW, log: TrainLogRow[]): void {
  const flat = (name: string, data: Float32Array) => ({ name, shape: [data.length], data });
  mkdirSync(dirname(file), { recursive: true });
  writeSafetensors(
    file,
    [
      flat("params", optimizer.model.trainable.params),
      flat("adamw.m", optimizer.m),
      flat("adamw.v", optimizer.v),
    ],
    "F32",
    { dno: "train-progress", key, adamw_step: String(optimizer.step), log: JSON.stringify(log) },
  );
}

/** Restores saved progress into the model and optimizer; returns the log of the steps it covers. */
function loadTrainProgress(file: string, key: string, optimizer: AdamW): { log: TrainLogRow[] } | undefined {
  if (!existsSync(file)) return undefined;
  const r = new SafetensorsReader(file);
  try {
    if (r.metadata.dno !== "train-progress" || r.metadata.key !== key) {
      throw new DnoError(
        `${file}: saved training progress of other training (settings differ); remove it to train from the start`,
      );
    }
    r.read("params", optimizer.model.trainable.params);
    r.read("adamw.m", optimizer.m);
    r.read("adamw.v", optimizer.v);
    optimizer.step = Number(r.metadata.adamw_step);
    const log = parseJsonText(r.metadata.log ?? "", file) as TrainLogRow[];
    if (!Array.isArray(log) || !Number.isInteger(optimizer.step)) {
      throw new DnoError(`${file}: saved training progress is damaged (metadata)`);
    }
    return { log };
  } finally {
    r.close();
  }
}

/**
 * K samples per prompt from the uniform mixture of the policies in `dirs` (each sample from a member
 * drawn for it; members loaded one at a time). `iterate` is the member's index in `dirs`.
 */
export async function sampleMixture(
  dirs: readonly string[],
  prompts: readonly PolicyPrompt[],
  options: Omit<SampleOptions, "firstPromptIndex">,
  progress?: (done: number, total: number) => void,
): Promise<(SampledText & { iterate: number })[][]> {
  const tokenizer = loadTokenizer(dirs[0]!);
  const results = await generateMixture(
    dirs.length,
    (m) => CausalLM.load(dirs[m]!),
    prompts.map((p) => encodePromptText({ tokenizer }, p)),
    generateOptions(tokenizer, options, progress),
  );
  return results.map((samples) =>
    samples.map((s) => ({
      text: s.text ?? tokenizer.decode(s.tokens),
      tokens: s.tokens,
      logprob: s.logprob,
      finished: s.finishReason === "eos",
      iterate: s.member,
    })),
  );
}

/** log of the mixture's probability, log (1/T) sum_t pi_t(response | prompt), for each example. */
export function mixtureLogprobs(dirs: readonly string[], items: readonly TextExample[]): Float64Array {
  const per = dirs.map((d) => sequenceLogprobs(loadPolicy(d), items));
  const out = new Float64Array(items.length);
  for (let i = 0; i < items.length; i++) {
    out[i] = logSumExp(Float64Array.from(per, (lp) => lp[i]!)) - Math.log(dirs.length);
  }
  return out;
}
