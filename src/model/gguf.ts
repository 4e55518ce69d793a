/**
 * GGUF (v3) export of Llama-family checkpoints for llama.cpp and Ollama, and a reader for its header.
 *
 * Layout: magic "GGUF", version, tensor count, metadata count; metadata key/values; tensor infos
 * (name, dims fastest-first, type, offset); zero padding to `general.alignment`; tensor data, each tensor
 * aligned. A row-major (rows, cols) matrix is stored with dims [cols, rows].
 */
import { readFileSync } from "node:fs";
import { engine } from "../engine/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { type ModelConfig, toHfConfig } from "./config.js";
import type { Tokenizer } from "./tokenizer.js";

/** The Hugging Face config.json fields the export reads. */
export interface GgufLlamaConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim: number;
  rms_norm_eps: number;
  rope_theta: number;
  max_position_embeddings: number;
  tie_word_embeddings: boolean;
  /** q/k/v_proj biases (Qwen2, Llama attention_bias) and the o_proj bias (Llama attention_bias). */
  qkv_bias?: boolean;
  o_bias?: boolean;
  rope_scaling?: {
    rope_type?: string;
    type?: string;
    factor?: number;
    low_freq_factor?: number;
    high_freq_factor?: number;
    original_max_position_embeddings?: number;
  } | null;
}

/** A checkpoint to export: its config and each parameter (Hugging Face name, row-major float32). */
export interface GgufSource {
  config: GgufLlamaConfig;
  tensor(name: string): Float32Array;
}

/** A model's parameters (flat buffer, native/model.h layout) as a GGUF export source. */
export function ggufSource(config: ModelConfig, params: Float32Array): GgufSource {
  if (config.slidingWindow > 0) {
    throw new DnoError("sliding-window attention cannot be exported to GGUF's llama architecture");
  }
  const slots = new Map(
    engine()
      .paramLayout(config)
      .tensors.map((t) => [t.name, t]),
  );
  return {
    config: {
      ...(toHfConfig(config) as unknown as GgufLlamaConfig),
      qkv_bias: config.qkvBias,
      o_bias: config.oBias,
    },
    tensor(name) {
      const slot = slots.get(name);
      if (slot === undefined) throw new DnoError(`the model has no tensor ${name}`);
      return params.subarray(slot.offset, slot.offset + slot.size);
    },
  };
}

export type GgufDtype = "f32" | "f16";

export interface GgufExportOptions {
  dtype: GgufDtype;
  name?: string;
}

const GGUF_MAGIC = 0x46554747;
const GGUF_VERSION = 3;
const ALIGNMENT = 32;

enum ValueType {
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
}

export enum TensorType {
  F32 = 0,
  F16 = 1,
}

/** llama.cpp's token types (llama_token_type). */
enum TokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

export type MetaValue =
  | { type: "u32"; value: number }
  | { type: "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "string[]"; value: string[] }
  | { type: "i32[]"; value: ArrayLike<number> }
  | { type: "f32[]"; value: ArrayLike<number> };

export interface TensorEntry {
  name: string;
  /** Row-major shape, outermost first (as in PyTorch). */
  shape: number[];
  type: TensorType;
  data: () => Float32Array;
}

/** Writes `source` as a GGUF file llama.cpp loads with architecture "llama". */
export function exportGguf(
  path: string,
  source: GgufSource,
  tokenizer: Tokenizer,
  options: GgufExportOptions,
): void {
  const { config } = source;
  const metadata = new Map<string, MetaValue>();
  const u32 = (value: number): MetaValue => ({ type: "u32", value });
  const f32 = (value: number): MetaValue => ({ type: "f32", value });
  for (const [key, value] of generalMetadata(options)) metadata.set(key, value);
  metadata.set("llama.context_length", u32(config.max_position_embeddings));
  metadata.set("llama.embedding_length", u32(config.hidden_size));
  metadata.set("llama.block_count", u32(config.num_hidden_layers));
  metadata.set("llama.feed_forward_length", u32(config.intermediate_size));
  metadata.set("llama.attention.head_count", u32(config.num_attention_heads));
  metadata.set("llama.attention.head_count_kv", u32(config.num_key_value_heads));
  metadata.set("llama.attention.key_length", u32(config.head_dim));
  metadata.set("llama.attention.value_length", u32(config.head_dim));
  metadata.set("llama.rope.dimension_count", u32(config.head_dim));
  metadata.set("llama.attention.layer_norm_rms_epsilon", f32(config.rms_norm_eps));
  metadata.set("llama.rope.freq_base", f32(config.rope_theta));
  metadata.set("llama.vocab_size", u32(config.vocab_size));
  const ropeFactors = ropeScalingMetadata(config, metadata);
  for (const [key, value] of tokenizerMetadata(tokenizer, config.vocab_size)) metadata.set(key, value);

  const tensors = tensorEntries(source, options.dtype);
  if (ropeFactors !== undefined) {
    tensors.push({
      name: "rope_freqs.weight",
      shape: [ropeFactors.length],
      type: TensorType.F32,
      data: () => ropeFactors,
    });
  }
  writeGgufFile(path, metadata, tensors);
}

/** Writes a GGUF file of these metadata and tensors, atomically. */
export function writeGgufFile(path: string, metadata: Map<string, MetaValue>, tensors: TensorEntry[]): void {
  writeFileAtomic(path, ggufChunks(metadata, tensors));
}

/** llama.cpp's names of a layer's projections (blk.N.<name>.weight), by their Hugging Face module. */
export const GGUF_PROJECTIONS = {
  q_proj: "attn_q",
  k_proj: "attn_k",
  v_proj: "attn_v",
  o_proj: "attn_output",
  gate_proj: "ffn_gate",
  up_proj: "ffn_up",
  down_proj: "ffn_down",
} as const;

/** The general.* keys every file of ours starts with (llama architecture). */
export function generalMetadata(options: GgufExportOptions): Map<string, MetaValue> {
  return new Map<string, MetaValue>([
    ["general.architecture", { type: "string", value: "llama" }],
    ["general.name", { type: "string", value: options.name ?? "dno" }],
    ["general.file_type", { type: "u32", value: options.dtype === "f16" ? 1 : 0 }],
    ["general.alignment", { type: "u32", value: ALIGNMENT }],
  ]);
}

/** Hugging Face parameter -> GGUF tensor, with the Q/K row permutation llama.cpp's rotary layout needs. */
function tensorEntries(source: GgufSource, dtype: GgufDtype): TensorEntry[] {
  const c = source.config;
  const C = c.hidden_size;
  const I = c.intermediate_size;
  const D = c.head_dim;
  const H = c.num_attention_heads;
  const KV = c.num_key_value_heads;
  // Matrices take the requested type; 1-D tensors (norms, biases) stay F32 as llama.cpp's converter keeps them.
  const matrixType = dtype === "f16" ? TensorType.F16 : TensorType.F32;
  const entries: TensorEntry[] = [];
  const add = (
    name: string,
    hfName: string,
    shape: number[],
    transform?: (x: Float32Array) => Float32Array,
  ) => {
    entries.push({
      name,
      shape,
      type: shape.length === 1 ? TensorType.F32 : matrixType,
      data: () => {
        const data = source.tensor(hfName);
        const expected = shape.reduce((a, b) => a * b, 1);
        if (data.length !== expected) {
          throw new DnoError(
            `${hfName}: expected ${shape.join("x")} = ${expected} values, got ${data.length}`,
          );
        }
        return transform ? transform(data) : data;
      },
    });
  };
  add("token_embd.weight", "model.embed_tokens.weight", [c.vocab_size, C]);
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const hf = `model.layers.${i}.`;
    const blk = `blk.${i}.`;
    add(`${blk}attn_norm.weight`, `${hf}input_layernorm.weight`, [C]);
    const P = GGUF_PROJECTIONS;
    add(`${blk}${P.q_proj}.weight`, `${hf}self_attn.q_proj.weight`, [H * D, C], (w) =>
      permuteRotaryRows(w, H, D),
    );
    add(`${blk}${P.k_proj}.weight`, `${hf}self_attn.k_proj.weight`, [KV * D, C], (w) =>
      permuteRotaryRows(w, KV, D),
    );
    add(`${blk}${P.v_proj}.weight`, `${hf}self_attn.v_proj.weight`, [KV * D, C]);
    if (c.qkv_bias) {
      add(`${blk}attn_q.bias`, `${hf}self_attn.q_proj.bias`, [H * D], (b) => permuteRotaryRows(b, H, D));
      add(`${blk}attn_k.bias`, `${hf}self_attn.k_proj.bias`, [KV * D], (b) => permuteRotaryRows(b, KV, D));
      add(`${blk}attn_v.bias`, `${hf}self_attn.v_proj.bias`, [KV * D]);
    }
    if (c.o_bias) add(`${blk}attn_output.bias`, `${hf}self_attn.o_proj.bias`, [C]);
    add(`${blk}${P.o_proj}.weight`, `${hf}self_attn.o_proj.weight`, [C, H * D]);
    add(`${blk}ffn_norm.weight`, `${hf}post_attention_layernorm.weight`, [C]);
    add(`${blk}${P.gate_proj}.weight`, `${hf}mlp.gate_proj.weight`, [I, C]);
    add(`${blk}${P.up_proj}.weight`, `${hf}mlp.up_proj.weight`, [I, C]);
    add(`${blk}${P.down_proj}.weight`, `${hf}mlp.down_proj.weight`, [C, I]);
  }
  add("output_norm.weight", "model.norm.weight", [C]);
  // Tied models have no output.weight; llama.cpp then reads token_embd for the output projection.
  if (!c.tie_word_embeddings) add("output.weight", "lm_head.weight", [c.vocab_size, C]);
  return entries;
}

/**
 * Hugging Face rotates the two halves of each head ("rotate half"); llama.cpp's llama architecture
 * rotates adjacent pairs. Reordering each head's rows from [x0..x_{D/2-1}, y0..] to [x0, y0, x1, y1, ...]
 * makes the two agree. `w` is (heads*D, cols) row-major (cols = 1 for a bias).
 */
export function permuteRotaryRows(w: Float32Array, heads: number, headDim: number): Float32Array {
  const cols = w.length / (heads * headDim);
  const half = headDim / 2;
  const out = new Float32Array(w.length);
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < half; j++) {
      for (let t = 0; t < 2; t++) {
        const from = (h * headDim + t * half + j) * cols;
        const to = (h * headDim + 2 * j + t) * cols;
        out.set(w.subarray(from, from + cols), to);
      }
    }
  }
  return out;
}

/** Adds rope scaling keys; returns llama3's per-frequency factors (the rope_freqs tensor) if used. */
function ropeScalingMetadata(
  config: GgufLlamaConfig,
  metadata: Map<string, MetaValue>,
): Float32Array | undefined {
  const s = config.rope_scaling;
  if (s === undefined || s === null) return undefined;
  const kind = s.rope_type ?? s.type;
  if (kind === "default") return undefined;
  if (kind === "linear" && s.factor !== undefined) {
    metadata.set("llama.rope.scaling.type", { type: "string", value: "linear" });
    metadata.set("llama.rope.scaling.factor", { type: "f32", value: s.factor });
    return undefined;
  }
  if (kind === "llama3") {
    const factor = s.factor ?? 8;
    const low = s.low_freq_factor ?? 1;
    const high = s.high_freq_factor ?? 4;
    const originalMax = s.original_max_position_embeddings ?? 8192;
    const half = config.head_dim / 2;
    const factors = new Float32Array(half);
    for (let i = 0; i < half; i++) {
      const freq = config.rope_theta ** ((-2 * i) / config.head_dim);
      const wavelen = (2 * Math.PI) / freq;
      if (wavelen < originalMax / high) factors[i] = 1;
      else if (wavelen > originalMax / low) factors[i] = factor;
      else {
        const smooth = (originalMax / wavelen - low) / (high - low);
        factors[i] = 1 / ((1 - smooth) / factor + smooth);
      }
    }
    return factors;
  }
  throw new DnoError(
    `config.json: rope_scaling: ${JSON.stringify(s)} cannot be exported to GGUF (linear, llama3 can)`,
  );
}

// ---------------------------------------------------------------------------------------------------------
// Tokenizer

const LLAMA3_SPLIT =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT =
  "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_SPLIT_I =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * The tokenizer as llama.cpp reads it: "gpt2" (byte-level BPE: tokens, merges, a named pre-tokenizer)
 * or "llama" (SentencePiece-style BPE with byte fallback: tokens, scores, byte tokens).
 */
function tokenizerMetadata(tokenizer: Tokenizer, modelVocab: number): Map<string, MetaValue> {
  const json = tokenizer.files.tokenizerJson;
  const config = tokenizer.files.tokenizerConfig;
  if (json.model.type !== "BPE") {
    throw new DnoError(`tokenizer.json: model.type ${json.model.type} cannot be exported to GGUF (BPE can)`);
  }
  if (tokenizer.vocabSize > modelVocab) {
    throw new DnoError(
      `tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${modelVocab}`,
    );
  }
  const text = JSON.stringify([json.pre_tokenizer, json.decoder, json.normalizer]);
  const byteLevel = text.includes('"ByteLevel"');
  const spm = !byteLevel && json.model.byte_fallback === true;
  if (!byteLevel && !spm) {
    throw new DnoError(
      "tokenizer.json: only byte-level BPE or SentencePiece-style BPE (byte_fallback) export to GGUF",
    );
  }
  const added = new Map((json.added_tokens ?? []).map((t) => [t.id, t]));
  const tokens: string[] = [];
  const types = new Int32Array(modelVocab);
  for (let id = 0; id < modelVocab; id++) {
    const token = tokenizer.idToToken(id);
    const addedToken = added.get(id);
    if (token === undefined) {
      tokens.push(`[PAD${id}]`);
      types[id] = TokenType.UNUSED;
    } else {
      tokens.push(token);
      if (addedToken !== undefined) {
        types[id] =
          token === json.model.unk_token
            ? TokenType.UNKNOWN
            : addedToken.special
              ? TokenType.CONTROL
              : TokenType.USER_DEFINED;
      } else if (spm && /^<0x[0-9A-F]{2}>$/.test(token)) types[id] = TokenType.BYTE;
      else types[id] = TokenType.NORMAL;
    }
  }
  const merges = (json.model.merges ?? []).map((m) => (Array.isArray(m) ? m.join(" ") : String(m)));
  const out = new Map<string, MetaValue>();
  out.set("tokenizer.ggml.model", { type: "string", value: spm ? "llama" : "gpt2" });
  out.set("tokenizer.ggml.tokens", { type: "string[]", value: tokens });
  out.set("tokenizer.ggml.token_type", { type: "i32[]", value: types });
  if (spm) {
    // llama.cpp's SentencePiece tokenizer merges the highest-scoring pair first: score = -merge rank.
    const scores = new Float32Array(modelVocab).fill(0);
    const vocab = new Map(tokens.map((t, id) => [t, id]));
    merges.forEach((m, rank) => {
      const id = vocab.get(m.replace(" ", ""));
      if (id !== undefined && scores[id] === 0) scores[id] = -(rank + 1);
    });
    out.set("tokenizer.ggml.scores", { type: "f32[]", value: scores });
    out.set("tokenizer.ggml.add_space_prefix", { type: "bool", value: true });
  } else {
    out.set("tokenizer.ggml.pre", { type: "string", value: preTokenizerName(json.pre_tokenizer) });
    out.set("tokenizer.ggml.merges", { type: "string[]", value: merges });
  }
  const idOf = (key: string): number | undefined => {
    const v = config[key];
    const content = typeof v === "string" ? v : (v as { content?: string } | null)?.content;
    return content === undefined ? undefined : tokens.indexOf(content);
  };
  const special: [string, number | undefined][] = [
    ["bos_token_id", tokenizer.bosTokenId],
    ["eos_token_id", tokenizer.eosTokenIds[0]],
    ["padding_token_id", idOf("pad_token")],
    ["unknown_token_id", idOf("unk_token")],
  ];
  for (const [key, id] of special) {
    if (id !== undefined && id >= 0) out.set(`tokenizer.ggml.${key}`, { type: "u32", value: id });
  }
  const addsBos = tokenizer.bosTokenId !== undefined && tokenizer.encode("").includes(tokenizer.bosTokenId);
  out.set("tokenizer.ggml.add_bos_token", { type: "bool", value: addsBos });
  out.set("tokenizer.ggml.add_eos_token", { type: "bool", value: false });
  if (tokenizer.chatTemplate !== undefined)
    out.set("tokenizer.chat_template", { type: "string", value: tokenizer.chatTemplate });
  return out;
}

/** llama.cpp names its pre-tokenizer regexes; recognise the common ones, else its default split. */
function preTokenizerName(preTokenizer: unknown): string {
  const text = JSON.stringify(preTokenizer ?? null);
  const splits = (JSON.stringify(preTokenizer ?? null).match(/"Regex":"((?:[^"\\]|\\.)*)"/g) ?? []).map(
    (m) => JSON.parse(m.slice(8)) as string,
  );
  if (splits.includes(LLAMA3_SPLIT)) return "llama-bpe";
  if (splits.includes(QWEN2_SPLIT) || splits.includes(QWEN2_SPLIT_I)) return "qwen2";
  if (splits.length === 0 && /"use_regex":true/.test(text)) return "gpt-2";
  return "default";
}

// ---------------------------------------------------------------------------------------------------------
// Binary writing

class ByteWriter {
  private buf = Buffer.alloc(1 << 16);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const next = Buffer.alloc(Math.max(this.buf.length * 2, this.length + n));
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }
  u32(v: number): void {
    this.reserve(4);
    this.length = this.buf.writeUInt32LE(v, this.length);
  }
  i32(v: number): void {
    this.reserve(4);
    this.length = this.buf.writeInt32LE(v, this.length);
  }
  u64(v: number): void {
    this.reserve(8);
    this.length = this.buf.writeBigUInt64LE(BigInt(v), this.length);
  }
  f32(v: number): void {
    this.reserve(4);
    this.length = this.buf.writeFloatLE(v, this.length);
  }
  u8(v: number): void {
    this.reserve(1);
    this.length = this.buf.writeUInt8(v, this.length);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.reserve(bytes.length);
    this.length += bytes.copy(this.buf, this.length);
  }
  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    this.reserve(n);
    this.buf.fill(0, this.length, this.length + n);
    this.length += n;
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(w: ByteWriter, v: MetaValue): void {
  switch (v.type) {
    case "u32":
      w.u32(ValueType.UINT32);
      w.u32(v.value);
      return;
    case "f32":
      w.u32(ValueType.FLOAT32);
      w.f32(v.value);
      return;
    case "bool":
      w.u32(ValueType.BOOL);
      w.u8(v.value ? 1 : 0);
      return;
    case "string":
      w.u32(ValueType.STRING);
      w.string(v.value);
      return;
    case "string[]":
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.STRING);
      w.u64(v.value.length);
      for (const s of v.value) w.string(s);
      return;
    case "i32[]":
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.INT32);
      w.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) w.i32(v.value[i]!);
      return;
    case "f32[]":
      w.u32(ValueType.ARRAY);
      w.u32(ValueType.FLOAT32);
      w.u64(v.value.length);
      for (let i = 0; i < v.value.length; i++) w.f32(v.value[i]!);
      return;
  }
}

const bytesPerValue = (type: TensorType): number => (type === TensorType.F16 ? 2 : 4);

/** The file as a header chunk followed by one chunk per tensor (each padded to the alignment). */
function* ggufChunks(metadata: Map<string, MetaValue>, tensors: TensorEntry[]): Generator<Uint8Array> {
  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    w.string(key);
    writeValue(w, value);
  }
  let offset = 0;
  for (const t of tensors) {
    w.string(t.name);
    w.u32(t.shape.length);
    for (let d = t.shape.length - 1; d >= 0; d--) w.u64(t.shape[d]!);
    w.u32(t.type);
    w.u64(offset);
    const size = t.shape.reduce((a, b) => a * b, 1) * bytesPerValue(t.type);
    offset += size + ((ALIGNMENT - (size % ALIGNMENT)) % ALIGNMENT);
  }
  w.pad(ALIGNMENT);
  yield w.bytes();
  for (const t of tensors) {
    const data = t.data();
    const bytes =
      t.type === TensorType.F16
        ? float32ToFloat16Bytes(data)
        : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    yield bytes;
    const pad = (ALIGNMENT - (bytes.length % ALIGNMENT)) % ALIGNMENT;
    if (pad > 0) yield new Uint8Array(pad);
  }
}

/** IEEE half precision, round to nearest even (overflow to infinity, NaN kept). */
export function float32ToFloat16Bytes(src: Float32Array): Uint8Array {
  const out = new Uint16Array(src.length);
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = halfBits(bits[i]!);
  return new Uint8Array(out.buffer);
}

function halfBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  // A carry out of the mantissa bumps the exponent, up to infinity: the right rounding.
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++;
  return sign | half;
}

export function float16ToFloat32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

// ---------------------------------------------------------------------------------------------------------
// Reading (header, metadata, tensors), for checks and tests

export interface GgufFile {
  version: number;
  metadata: Map<string, unknown>;
  tensors: Map<string, { dims: number[]; type: number; offset: number }>;
  dataOffset: number;
  /** Row-major float32 values of a tensor (F32 or F16 in the file). */
  read(name: string): Float32Array;
}

/** Bytes each metadata value type takes at least (arrays: type + count; strings: the length). */
const MIN_VALUE_BYTES: Record<number, number> = {
  0: 1,
  1: 1,
  2: 2,
  3: 2,
  4: 4,
  5: 4,
  6: 4,
  7: 1,
  8: 8,
  9: 12,
  10: 8,
  11: 8,
  12: 8,
};
const MAX_DIMS = 4; // GGML_MAX_DIMS
const TENSOR_BYTES: Record<number, number> = { [TensorType.F32]: 4, [TensorType.F16]: 2 };

/** Reads a GGUF file (v2 or v3), checking every count, string, offset and size against the file. */
export function readGguf(path: string): GgufFile {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new DnoError(`${path}: cannot read: ${(e as Error).message}`);
  }
  return parseGguf(buf, path);
}

export function parseGguf(buf: Buffer, path: string): GgufFile {
  const fail = (message: string): never => {
    throw new DnoError(`${path}: ${message}`);
  };
  if (buf.length < 4 || buf.readUInt32LE(0) !== GGUF_MAGIC) fail("not a GGUF file (bad magic)");
  let pos = 4;
  const need = (n: number) => {
    if (pos + n > buf.length) fail(`truncated at byte ${pos} (${n} more bytes needed)`);
  };
  const u32 = () => {
    need(4);
    const v = buf.readUInt32LE(pos);
    pos += 4;
    return v;
  };
  const u64 = () => {
    need(8);
    const v = buf.readBigUInt64LE(pos);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`value ${v} at byte ${pos} is too large`);
    pos += 8;
    return Number(v);
  };
  const utf8 = new TextDecoder("utf-8", { fatal: true });
  const str = () => {
    const at = pos;
    const n = u64();
    need(n);
    let s = "";
    try {
      s = utf8.decode(buf.subarray(pos, pos + n));
    } catch {
      fail(`string at byte ${at} is not valid UTF-8`);
    }
    pos += n;
    return s;
  };
  const fixed = (size: number, read: (at: number) => unknown) => {
    need(size);
    pos += size;
    return read(pos - size);
  };
  const scalar = (type: number, depth: number): unknown => {
    switch (type) {
      case 0:
        return fixed(1, (at) => buf.readUInt8(at));
      case 1:
        return fixed(1, (at) => buf.readInt8(at));
      case 2:
        return fixed(2, (at) => buf.readUInt16LE(at));
      case 3:
        return fixed(2, (at) => buf.readInt16LE(at));
      case ValueType.UINT32:
        return u32();
      case ValueType.INT32:
        return fixed(4, (at) => buf.readInt32LE(at));
      case ValueType.FLOAT32:
        return fixed(4, (at) => buf.readFloatLE(at));
      case ValueType.BOOL:
        return fixed(1, (at) => {
          const b = buf.readUInt8(at);
          if (b > 1) fail(`bool at byte ${at} is ${b}, not 0 or 1`);
          return b === 1;
        });
      case ValueType.STRING:
        return str();
      case ValueType.UINT64:
        return u64();
      case 11:
        return fixed(8, (at) => Number(buf.readBigInt64LE(at)));
      case 12:
        return fixed(8, (at) => buf.readDoubleLE(at));
      case ValueType.ARRAY: {
        const at = pos;
        const elemType = u32();
        if (depth > 0) fail(`nested array at byte ${at}`);
        const n = u64();
        const min = MIN_VALUE_BYTES[elemType];
        if (min === undefined) fail(`unknown array element type ${elemType} at byte ${at}`);
        if (n * min! > buf.length - pos) fail(`array of ${n} at byte ${at} runs past the end of the file`);
        const items: unknown[] = [];
        for (let i = 0; i < n; i++) items.push(scalar(elemType, depth + 1));
        return items;
      }
      default:
        return fail(`unknown metadata type ${type} at byte ${pos - 4}`);
    }
  };
  const version = u32();
  if (version !== 2 && version !== 3) fail(`GGUF version ${version}; this reader knows versions 2 and 3`);
  const tensorCount = u64();
  const kvCount = u64();
  // Each metadata pair takes at least 8 + 4 + 1 bytes, each tensor info at least 8 + 4 + 4 + 8.
  if (kvCount * 13 + tensorCount * 24 > buf.length - pos) {
    fail(`${kvCount} metadata pairs and ${tensorCount} tensors cannot fit in ${buf.length} bytes`);
  }
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < kvCount; i++) {
    const at = pos;
    const key = str();
    if (metadata.has(key)) fail(`metadata key ${JSON.stringify(key)} at byte ${at} appears twice`);
    metadata.set(key, scalar(u32(), 0));
  }
  const tensors = new Map<string, { dims: number[]; type: number; offset: number }>();
  for (let i = 0; i < tensorCount; i++) {
    const at = pos;
    const name = str();
    if (tensors.has(name)) fail(`tensor ${JSON.stringify(name)} at byte ${at} appears twice`);
    const nDims = u32();
    if (nDims < 1 || nDims > MAX_DIMS)
      fail(`tensor ${JSON.stringify(name)}: ${nDims} dimensions (1 to ${MAX_DIMS})`);
    const dims = Array.from({ length: nDims }, () => u64());
    tensors.set(name, { dims, type: u32(), offset: u64() });
  }
  const alignment = metadata.get("general.alignment") ?? ALIGNMENT;
  if (
    typeof alignment !== "number" ||
    !Number.isInteger(alignment) ||
    alignment < 1 ||
    alignment & (alignment - 1)
  ) {
    fail(`general.alignment ${JSON.stringify(alignment)} is not a power of two`);
  }
  const align = alignment as number;
  const dataOffset = Math.ceil(pos / align) * align;
  // Tensor data: aligned, inside the file, no two tensors sharing a byte.
  const ranges: { name: string; begin: number; end: number }[] = [];
  for (const [name, t] of tensors) {
    const size = TENSOR_BYTES[t.type];
    const numel = t.dims.reduce((a, b) => a * b, 1);
    const where = `tensor ${JSON.stringify(name)}`;
    if (t.offset % align !== 0)
      fail(`${where}: offset ${t.offset} is not a multiple of the alignment ${align}`);
    if (size === undefined) continue; // a quantized type this reader does not size; read() refuses it
    const begin = dataOffset + t.offset;
    const end = begin + numel * size;
    if (!Number.isSafeInteger(end) || end > buf.length) {
      fail(`${where}: its data, bytes ${begin}-${end - 1}, runs past the end of the ${buf.length}-byte file`);
    }
    ranges.push({ name, begin, end });
  }
  ranges.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const [a, b] = [ranges[i - 1]!, ranges[i]!];
    if (b.begin < a.end && b.end > b.begin) {
      fail(
        `tensor ${JSON.stringify(b.name)} (bytes ${b.begin}-${b.end - 1}) overlaps tensor ${JSON.stringify(a.name)} (bytes ${a.begin}-${a.end - 1})`,
      );
    }
  }
  return {
    version,
    metadata,
    tensors,
    dataOffset,
    read(name) {
      const t = tensors.get(name);
      if (t === undefined) throw new DnoError(`${path}: no tensor ${name}`);
      const n = t.dims.reduce((a, b) => a * b, 1);
      const start = dataOffset + t.offset;
      const out = new Float32Array(n);
      if (t.type === TensorType.F32) {
        for (let i = 0; i < n; i++) out[i] = buf.readFloatLE(start + 4 * i);
      } else if (t.type === TensorType.F16) {
        for (let i = 0; i < n; i++) out[i] = float16ToFloat32(buf.readUInt16LE(start + 2 * i));
      } else throw new DnoError(`${path}: tensor ${name} has type ${t.type}; only F32 and F16 are read`);
      return out;
    },
  };
}
