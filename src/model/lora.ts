/**
 * LoRA adapters (Hu et al. 2021) in Hugging Face PEFT's format: a targeted projection W (out, in) gains
 * scale * B A with A (r, in), B (out, r), scale = lora_alpha / r (rsLoRA: lora_alpha / sqrt(r)). The
 * adapter's tensors live in one Float32Array laid out by native/lora.h (`engine().loraLayout`), keyed by
 * PEFT's names (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight), so a directory we
 * save loads in PEFT and vLLM, and theirs load here.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import { Rng } from "../core/rng.js";
import { engine, type NativeLoraSpec, type TensorSlot } from "../engine/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { readJsonFile } from "../util/files.js";
import { describeZodError } from "../util/zod.js";
import { type ModelConfig, readConfig } from "./config.js";
import { SafetensorsReader, writeSafetensors } from "./safetensors.js";

/** PEFT's target_modules names of the projections LoRA can adapt, in the engine's order. */
export const LORA_TARGETS = [
  "q_proj",
  "k_proj",
  "v_proj",
  "o_proj",
  "gate_proj",
  "up_proj",
  "down_proj",
] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/**
 * A run config's `train.lora` as written: rank, lora_alpha (default r: scale 1), the adapted projections
 * (default all seven, PEFT's "all-linear" without lm_head) and rsLoRA scaling.
 */
export const loraOptionsSchema = z.strictObject({
  r: z.number().int().positive().describe("the adapter's rank"),
  alpha: z.number().positive().optional().describe("lora_alpha (default r: scale 1)"),
  target_modules: z
    .array(z.enum(LORA_TARGETS))
    .nonempty()
    .default([...LORA_TARGETS])
    .describe("the adapted projections (default all seven: PEFT's all-linear without lm_head)"),
  rslora: z.boolean().default(false).describe("rsLoRA scaling alpha / sqrt(r) instead of alpha / r"),
});
export type LoraOptions = z.output<typeof loraOptionsSchema>;

export interface LoraConfig {
  r: number;
  alpha: number;
  /** in the engine's order, each once */
  targetModules: LoraTarget[];
  rslora: boolean;
}

export function toLoraConfig(o: LoraOptions): LoraConfig {
  return {
    r: o.r,
    alpha: o.alpha ?? o.r,
    targetModules: LORA_TARGETS.filter((t) => o.target_modules.includes(t)),
    rslora: o.rslora,
  };
}

/** `train.lora` parsed straight to a LoraConfig. */
export const loraConfigSchema = loraOptionsSchema.transform(toLoraConfig);

export const ADAPTER_CONFIG = "adapter_config.json";
export const ADAPTER_WEIGHTS = "adapter_model.safetensors";

/** PEFT's scaling: lora_alpha / r, or lora_alpha / sqrt(r) with rsLoRA (Kalajdzievski 2023). */
export function loraScale(c: LoraConfig): number {
  return c.rslora ? c.alpha / Math.sqrt(c.r) : c.alpha / c.r;
}

export function nativeLoraSpec(c: LoraConfig): NativeLoraSpec {
  return { rank: c.r, scale: loraScale(c), targets: c.targetModules };
}

/** One adapted projection: its A (r, in) and B (out, r) slots and the base weight they update. */
export interface LoraPair {
  base: string;
  a: TensorSlot;
  b: TensorSlot;
}

export class LoraAdapter {
  readonly layout: TensorSlot[];
  private readonly slots = new Map<string, TensorSlot>();
  private gradBuffer: Float32Array | null = null;

  private constructor(
    readonly config: LoraConfig,
    readonly modelConfig: ModelConfig,
    readonly params: Float32Array,
    layout: TensorSlot[],
  ) {
    this.layout = layout;
    for (const s of layout) this.slots.set(s.name, s);
  }

  private static empty(modelConfig: ModelConfig, config: LoraConfig): LoraAdapter {
    const { tensors, total } = engine().loraLayout(modelConfig, nativeLoraSpec(config));
    return new LoraAdapter(config, modelConfig, new Float32Array(total), tensors);
  }

  /**
   * PEFT's initialisation: A as torch's kaiming_uniform_(a = sqrt(5)), i.e. uniform(-1/sqrt(in),
   * 1/sqrt(in)); B zero, so the adapted model starts equal to the base. The same seed, the same A.
   */
  static init(modelConfig: ModelConfig, config: LoraConfig, seed: number): LoraAdapter {
    const adapter = LoraAdapter.empty(modelConfig, config);
    for (const { a } of adapter.pairs()) {
      const bound = 1 / Math.sqrt(a.shape[1]!);
      const rng = Rng.derive(seed, "lora-init", a.name);
      const t = adapter.tensor(a.name);
      for (let i = 0; i < t.length; i++) t[i] = (2 * rng.float() - 1) * bound;
    }
    return adapter;
  }

  /**
   * Loads a PEFT adapter directory for a model of `modelConfig`. Layers or projections the file leaves
   * out stay zero (no change), as PEFT's layers_to_transform does.
   */
  static load(dir: string, modelConfig: ModelConfig): LoraAdapter {
    const { config, declared } = readAdapterConfig(dir);
    const weights = join(dir, ADAPTER_WEIGHTS);
    if (!existsSync(weights)) throw new DnoError(`${dir}: no ${ADAPTER_WEIGHTS}`);
    const reader = new SafetensorsReader(weights);
    try {
      const present = new Set<LoraTarget>();
      for (const name of reader.entries.keys()) {
        const target = LORA_TARGETS.find((t) => name.includes(`.${t}.lora_`));
        if (!target || !/\.lora_[AB]\.weight$/.test(name)) {
          throw new DnoError(
            `${weights}: tensor ${name}: not a lora_A/lora_B weight of ${LORA_TARGETS.join(", ")}`,
          );
        }
        if (declared && !declared.includes(target)) {
          throw new DnoError(
            `${weights}: tensor ${name}: ${target} is not in target_modules of ${ADAPTER_CONFIG}`,
          );
        }
        present.add(target);
      }
      if (present.size === 0) throw new DnoError(`${weights}: no lora_A/lora_B tensors`);
      const adapter = LoraAdapter.empty(modelConfig, {
        ...config,
        targetModules: LORA_TARGETS.filter((t) => present.has(t)),
      });
      for (const name of reader.entries.keys()) {
        const slot = adapter.slots.get(name);
        if (!slot)
          throw new DnoError(`${weights}: tensor ${name} does not fit this model (its layers or names)`);
        const shape = reader.entries.get(name)!.shape;
        if (shape.join(",") !== slot.shape.join(",")) {
          throw new DnoError(
            `${weights}: tensor ${name} has shape [${shape}], r ${config.r} and the model imply [${slot.shape}]`,
          );
        }
        reader.readWeights(name, adapter.tensor(name));
      }
      for (const { a, b } of adapter.pairs()) {
        if (reader.entries.has(a.name) !== reader.entries.has(b.name)) {
          throw new DnoError(`${weights}: ${a.name} and ${b.name} must come together`);
        }
      }
      return adapter;
    } finally {
      reader.close();
    }
  }

  /** Writes DIR/adapter_config.json and DIR/adapter_model.safetensors (F32), as PEFT's save_pretrained. */
  save(dir: string, baseModel: string): void {
    mkdirSync(dir, { recursive: true });
    writeSafetensors(
      join(dir, ADAPTER_WEIGHTS),
      this.layout.map((s) => ({ name: s.name, shape: s.shape, data: this.tensor(s.name) })),
    );
    writeFileAtomic(
      join(dir, ADAPTER_CONFIG),
      `${JSON.stringify(peftAdapterConfig(this.config, baseModel), null, 2)}\n`,
    );
  }

  get spec(): NativeLoraSpec {
    return nativeLoraSpec(this.config);
  }

  get scale(): number {
    return loraScale(this.config);
  }

  /** The gradient buffer (same layout), allocated on first use. */
  get grads(): Float32Array {
    this.gradBuffer ??= new Float32Array(this.params.length);
    return this.gradBuffer;
  }

  /** A view of one tensor by its PEFT key. */
  tensor(name: string): Float32Array {
    const s = this.slots.get(name);
    if (!s) throw new RangeError(`no adapter tensor ${name}`);
    return this.params.subarray(s.offset, s.offset + s.size);
  }

  /** Every adapted projection: its A and B slots and the base weight's Hugging Face name. */
  pairs(): LoraPair[] {
    const out: LoraPair[] = [];
    for (const a of this.layout) {
      if (!a.name.endsWith(".lora_A.weight")) continue;
      const stem = a.name.slice(0, -".lora_A.weight".length);
      out.push({
        base: `${stem.slice("base_model.model.".length)}.weight`,
        a,
        b: this.slots.get(`${stem}.lora_B.weight`)!,
      });
    }
    return out;
  }
}

/** adapter_config.json as PEFT writes it for a LoRA of a causal LM (the fields PEFT and vLLM read). */
function peftAdapterConfig(c: LoraConfig, baseModel: string): Record<string, unknown> {
  return {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: c.r,
    lora_alpha: c.alpha,
    lora_dropout: 0,
    target_modules: c.targetModules,
    use_rslora: c.rslora,
    use_dora: false,
    bias: "none",
    fan_in_fan_out: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
}

/** The PEFT fields we read; features we do not implement must be off. */
const adapterConfigSchema = z.object({
  peft_type: z.literal("LORA", { message: "peft_type must be LORA" }),
  r: z.number().int().positive(),
  lora_alpha: z.number().positive(),
  use_rslora: z.boolean().default(false),
  target_modules: z.union([z.array(z.string()), z.string(), z.null()]).optional(),
  base_model_name_or_path: z.string().nullish(),
  use_dora: z.literal(false, { message: "DoRA adapters are not supported" }).optional(),
  bias: z.literal("none", { message: "adapters that train biases are not supported" }).optional(),
  fan_in_fan_out: z.literal(false, { message: "fan_in_fan_out adapters are not supported" }).optional(),
  modules_to_save: z
    .union([z.null(), z.array(z.string()).length(0)], {
      message: "modules_to_save (fully trained modules) is not supported",
    })
    .optional(),
  rank_pattern: z
    .record(z.string(), z.unknown())
    .refine((v) => Object.keys(v).length === 0, {
      message: "per-module ranks (rank_pattern) are not supported",
    })
    .optional(),
  alpha_pattern: z
    .record(z.string(), z.unknown())
    .refine((v) => Object.keys(v).length === 0, {
      message: "per-module alphas (alpha_pattern) are not supported",
    })
    .optional(),
});

/**
 * DIR/adapter_config.json as a LoraConfig (targets: all seven until the weights say which), and the
 * target_modules it declares when it lists names (null for "all-linear" or a pattern).
 */
export function readAdapterConfig(dir: string): {
  config: LoraConfig;
  declared: LoraTarget[] | null;
  baseModel: string | null;
} {
  const file = join(dir, ADAPTER_CONFIG);
  if (!existsSync(file)) throw new DnoError(`${dir}: no ${ADAPTER_CONFIG} (not a PEFT adapter directory)`);
  const parsed = adapterConfigSchema.safeParse(readJsonFile(file));
  if (!parsed.success) throw new DnoError(`${file}: ${describeZodError(parsed.error)}`);
  const c = parsed.data;
  let declared: LoraTarget[] | null = null;
  if (Array.isArray(c.target_modules)) {
    declared = c.target_modules.map((name) => {
      const short = name.split(".").pop()!;
      const target = LORA_TARGETS.find((t) => t === short);
      if (!target)
        throw new DnoError(`${file}: target_modules: ${name} is not one of ${LORA_TARGETS.join(", ")}`);
      return target;
    });
  }
  return {
    config: { r: c.r, alpha: c.lora_alpha, targetModules: [...LORA_TARGETS], rslora: c.use_rslora },
    declared,
    baseModel: c.base_model_name_or_path ?? null,
  };
}

/** Folds an adapter into base weights: W += scale B A for every adapted projection (PEFT's merge). */
export function mergeLora(adapter: LoraAdapter, weight: (hfName: string) => Float32Array): void {
  const e = engine();
  const r = adapter.config.r;
  for (const { base, a, b } of adapter.pairs()) {
    const [out, inDim] = [b.shape[0]!, a.shape[1]!];
    e.sgemm(
      false,
      false,
      out,
      inDim,
      r,
      adapter.scale,
      adapter.tensor(b.name),
      r,
      adapter.tensor(a.name),
      inDim,
      1,
      weight(base),
      inDim,
    );
  }
}

/**
 * An adapter checkpoint: a directory holding a PEFT adapter and no config.json, whose
 * base_model_name_or_path names its base checkpoint (relative to the adapter directory, or absolute).
 * It stands for the base with the adapter merged: a run keeps one per iteration instead of a full copy.
 */
export function isAdapterCheckpoint(dir: string): boolean {
  return !existsSync(join(dir, "config.json")) && existsSync(join(dir, ADAPTER_CONFIG));
}

/** The full checkpoint under a chain of adapter checkpoints (`dir` itself when it is one): its config.json is theirs. */
export function fullCheckpointOf(dir: string): string {
  const seen = new Set<string>();
  let at = resolve(dir);
  while (isAdapterCheckpoint(at)) {
    if (seen.has(at)) throw new DnoError(`${dir}: its chain of adapter bases loops back to ${at}`);
    seen.add(at);
    at = adapterBase(at);
  }
  return at;
}

/** config.json of a checkpoint, or of the full checkpoint under an adapter checkpoint. */
export function readCheckpointConfig(dir: string): ModelConfig {
  return readConfig(fullCheckpointOf(dir));
}

/** The base checkpoint directory of an adapter checkpoint. */
export function adapterBase(dir: string): string {
  const { baseModel } = readAdapterConfig(dir);
  if (baseModel === null || baseModel === "") {
    throw new DnoError(
      `${join(dir, ADAPTER_CONFIG)}: base_model_name_or_path is empty; apply the adapter to its base with --adapter`,
    );
  }
  const base = resolve(dir, baseModel);
  if (!existsSync(join(base, "config.json")) && !existsSync(join(base, ADAPTER_CONFIG))) {
    throw new DnoError(
      `${join(dir, ADAPTER_CONFIG)}: base_model_name_or_path ${baseModel}: no checkpoint at ${base}`,
    );
  }
  return base;
}
