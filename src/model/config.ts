/**
 * Hugging Face config.json for Llama-family decoders (Llama, Qwen2, Mistral; SmolLM and TinyLlama are
 * Llama): parsed once here, with HF's defaults, into the engine's NativeConfig. Anything that would make
 * our forward pass differ from HF's is refused with an error naming the field.
 */
import { join } from "node:path";
import { z } from "zod";
import type { NativeConfig } from "../engine/index.js";
import { DnoError } from "../util/errors.js";
import { readJsonFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";

export type ModelType = "llama" | "qwen2" | "mistral";

export interface ModelConfig extends NativeConfig {
  modelType: ModelType;
  maxPositionEmbeddings: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** The file's own fields, written back (with the defaults used made explicit) by toHfConfig. */
  raw: Record<string, unknown>;
}

const ARCHITECTURES: Record<ModelType, string> = {
  llama: "LlamaForCausalLM",
  qwen2: "Qwen2ForCausalLM",
  mistral: "MistralForCausalLM",
};

const positiveInt = z.number().int().positive();
const tokenIds = z.union([z.number().int(), z.array(z.number().int())]).nullish();

const ropeScalingSchema = z
  .looseObject({
    rope_type: z.string().optional(),
    type: z.string().optional(),
    rope_theta: z.number().positive().optional(),
    factor: z.number().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    original_max_position_embeddings: z.number().positive().optional(),
  })
  .nullish();

const configSchema = z.looseObject({
  model_type: z.string().default("llama"),
  architectures: z.array(z.string()).nullish(),
  vocab_size: positiveInt,
  hidden_size: positiveInt,
  intermediate_size: positiveInt,
  num_hidden_layers: positiveInt,
  num_attention_heads: positiveInt,
  num_key_value_heads: positiveInt.nullish(),
  head_dim: positiveInt.nullish(),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().nullish(),
  rope_scaling: ropeScalingSchema,
  rope_parameters: ropeScalingSchema,
  tie_word_embeddings: z.boolean().default(false),
  attention_bias: z.boolean().default(false),
  mlp_bias: z.boolean().default(false),
  hidden_act: z.string().default("silu"),
  attention_dropout: z.number().default(0),
  sliding_window: z.number().int().positive().nullish(),
  use_sliding_window: z.boolean().default(false),
  max_position_embeddings: positiveInt.default(2048),
  pad_token_id: z.number().int().nullish(),
  bos_token_id: z.number().int().nullish(),
  eos_token_id: tokenIds,
  quantization_config: z.unknown().optional(),
});

/** Parses a config.json object; `source` names it in errors (a file path). */
export function parseConfig(raw: unknown, source: string): ModelConfig {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw new DnoError(`${source}: ${describeZodError(parsed.error)}`);
  const c = parsed.data;
  const refuse = (field: string, why: string): never => {
    throw new DnoError(`${source}: ${field}: ${why}`);
  };
  if (!(c.model_type in ARCHITECTURES)) {
    refuse("model_type", `${JSON.stringify(c.model_type)} is not supported (llama, qwen2, mistral)`);
  }
  const modelType = c.model_type as ModelType;
  for (const arch of c.architectures ?? []) {
    if (arch !== ARCHITECTURES[modelType]) {
      refuse("architectures", `${arch} is not supported (${ARCHITECTURES[modelType]} for ${modelType})`);
    }
  }
  if (c.hidden_act !== "silu")
    refuse("hidden_act", `${JSON.stringify(c.hidden_act)} is not supported (silu)`);
  if (c.mlp_bias) refuse("mlp_bias", "MLP biases are not supported");
  if (c.attention_dropout !== 0) refuse("attention_dropout", "must be 0 (dropout is not supported)");
  if (c.quantization_config !== undefined)
    refuse("quantization_config", "quantized checkpoints are not supported");
  if (modelType === "qwen2" && c.use_sliding_window) {
    refuse("use_sliding_window", "Qwen2 sliding-window attention is not supported");
  }
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    refuse(
      "num_key_value_heads",
      `${numKvHeads} does not divide num_attention_heads ${c.num_attention_heads}`,
    );
  }
  if (c.head_dim == null && c.hidden_size % c.num_attention_heads !== 0) {
    refuse("head_dim", "missing, and hidden_size is not a multiple of num_attention_heads");
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (headDim % 2 !== 0) refuse("head_dim", `${headDim} must be even for RoPE`);

  const ropeField = c.rope_scaling != null ? "rope_scaling" : "rope_parameters";
  const rope = c.rope_scaling ?? c.rope_parameters ?? {};
  const ropeType = rope.rope_type ?? rope.type ?? "default";
  let ropeLlama3: NativeConfig["ropeLlama3"] = null;
  if (ropeType === "llama3") {
    const need = (
      key: "factor" | "low_freq_factor" | "high_freq_factor" | "original_max_position_embeddings",
    ) => rope[key] ?? refuse(`${ropeField}.${key}`, "required for llama3 RoPE scaling");
    ropeLlama3 = {
      factor: need("factor"),
      lowFreqFactor: need("low_freq_factor"),
      highFreqFactor: need("high_freq_factor"),
      originalMaxPositionEmbeddings: need("original_max_position_embeddings"),
    };
    if (ropeLlama3.lowFreqFactor === ropeLlama3.highFreqFactor) {
      refuse(`${ropeField}.high_freq_factor`, "must differ from low_freq_factor");
    }
  } else if (ropeType !== "default") {
    refuse(`${ropeField}.rope_type`, `${JSON.stringify(ropeType)} is not supported (default, llama3)`);
  }
  const llamaBias = modelType === "llama" && c.attention_bias;
  const pad = c.pad_token_id;
  const eos = c.eos_token_id;
  return {
    modelType,
    vocabSize: c.vocab_size,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta ?? rope.rope_theta ?? 10000,
    ropeLlama3,
    qkvBias: modelType === "qwen2" || llamaBias,
    oBias: llamaBias,
    tieWordEmbeddings: c.tie_word_embeddings,
    slidingWindow:
      modelType === "mistral" ? (c.sliding_window === undefined ? 4096 : (c.sliding_window ?? 0)) : 0,
    padTokenId: pad != null && pad >= 0 && pad < c.vocab_size ? pad : -1,
    maxPositionEmbeddings: c.max_position_embeddings,
    bosTokenId: c.bos_token_id ?? null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
    raw: raw as Record<string, unknown>,
  };
}

/** Reads DIR/config.json. */
export function readConfig(dir: string): ModelConfig {
  const path = join(dir, "config.json");
  return parseConfig(readJsonFile(path), path);
}

/** config.json for a saved model: the original fields, plus every default we relied on written out. */
export function toHfConfig(config: ModelConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {
    model_type: config.modelType,
    architectures: [ARCHITECTURES[config.modelType]],
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    hidden_act: "silu",
    tie_word_embeddings: config.tieWordEmbeddings,
    max_position_embeddings: config.maxPositionEmbeddings,
  };
  if (config.modelType === "llama") out.attention_bias = config.oBias;
  if (config.modelType === "mistral") out.sliding_window = config.slidingWindow || null;
  return { ...config.raw, ...out, torch_dtype: "float32" };
}
