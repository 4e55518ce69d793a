/**
 * A LoRA adapter as a llama.cpp adapter GGUF (what llama.cpp's convert_lora_to_gguf.py writes, loaded by
 * `llama-cli --lora` and node-llama-cpp's `lora` context option) on top of our base GGUF export:
 * general.type = adapter, adapter.type = lora, adapter.lora.alpha; per adapted projection the tensors
 * blk.N.<name>.weight.lora_a (A, r x in) and .lora_b (B, out x r), B's rows of q/k permuted as the base
 * export permutes q/k (llama.cpp's rotary layout), A unchanged.
 */
import { DnoError } from "../util/errors.js";
import {
  GGUF_PROJECTIONS,
  type GgufExportOptions,
  generalMetadata,
  type MetaValue,
  permuteRotaryRows,
  type TensorEntry,
  TensorType,
  writeGgufFile,
} from "./gguf.js";
import { LORA_TARGETS, type LoraAdapter } from "./lora.js";

export function exportGgufAdapter(path: string, adapter: LoraAdapter, options: GgufExportOptions): void {
  const c = adapter.modelConfig;
  if (c.slidingWindow > 0) {
    throw new DnoError("sliding-window attention cannot be exported to GGUF's llama architecture");
  }
  const { r, alpha, rslora } = adapter.config;
  const metadata = generalMetadata(options);
  metadata.set("general.type", { type: "string", value: "adapter" });
  metadata.set("adapter.type", { type: "string", value: "lora" });
  // llama.cpp scales by alpha / r; rsLoRA's alpha / sqrt(r) is that scale with alpha * sqrt(r)
  const ggufAlpha: MetaValue = { type: "f32", value: rslora ? alpha * Math.sqrt(r) : alpha };
  metadata.set("adapter.lora.alpha", ggufAlpha);

  const type = options.dtype === "f16" ? TensorType.F16 : TensorType.F32;
  const tensors: TensorEntry[] = [];
  for (const { base, a, b } of adapter.pairs()) {
    const match = /^model\.layers\.(\d+)\.(?:self_attn|mlp)\.(\w+)\.weight$/.exec(base);
    const target = LORA_TARGETS.find((t) => t === match?.[2]);
    if (!match || !target) throw new DnoError(`adapter tensor ${a.name}: no GGUF name for ${base}`);
    const name = `blk.${match[1]}.${GGUF_PROJECTIONS[target]}.weight`;
    const heads = target === "q_proj" ? c.numHeads : target === "k_proj" ? c.numKvHeads : 0;
    const bData = () => {
      const data = adapter.tensor(b.name);
      return heads > 0 ? permuteRotaryRows(data, heads, c.headDim) : data;
    };
    tensors.push({ name: `${name}.lora_a`, shape: a.shape, type, data: () => adapter.tensor(a.name) });
    tensors.push({ name: `${name}.lora_b`, shape: b.shape, type, data: bData });
  }
  writeGgufFile(path, metadata, tensors);
}
