/**
 * CausalLM: a Llama-family decoder on the native engine. Parameters (and, once training starts,
 * gradients) live in one Float32Array each, laid out by native/model.h's param_layout; the engine reads
 * and writes them in place. Sequences in a batch are packed back to back: no padding is computed.
 */
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Rng } from "../core/rng.js";
import { engine, type NativeModel, type TensorSlot } from "../engine/index.js";
import { writeFileAtomic } from "../util/atomic.js";
import { DnoError } from "../util/errors.js";
import { type ModelConfig, readConfig, toHfConfig } from "./config.js";
import { type GenerateOptions, generate, type Sample } from "./generate.js";
import { adapterBase, isAdapterCheckpoint, LoraAdapter, mergeLora } from "./lora.js";
import { defaultPrecision, type Precision, type ResolvedPrecision, resolvePrecision } from "./precision.js";
import { forEachCheckpointFile, writeCheckpoint } from "./safetensors.js";

/** A prompt (at least one token) and a response; its log-prob sums the response tokens given all before. */
export interface Example {
  prompt: number[];
  response: number[];
}

/**
 * d loss / d (sequence log-prob) per example, and the loss. A loss that is a sum of terms over groups of
 * examples (each example's gradient reads only the log-probs of its own group: an SFT example, a
 * preference pair) says so with `groupOf`. Batches larger than maxBatchTokens are then split along groups
 * and run one forward per piece instead of two; the loss is called once per piece, every log-prob of the
 * pieces so far filled in (the rest 0), and its last call, which sees them all, is the batch's result.
 */
export interface SequenceLoss {
  (seqLogprobs: Float64Array): { loss: number; grad: Float64Array };
  /** the group of example i (any number; equal numbers, one group) */
  groupOf?: (example: number) => number;
}

/**
 * Tokens whose training activations (float32) fit in about 1 GiB; within [256, 16384]. Every layer keeps
 * its activations, or with recompute only its input, plus one layer's activations and their gradients.
 */
function defaultBatchTokens(c: ModelConfig, recompute: boolean): number {
  const qkv = (c.numHeads + 2 * c.numKvHeads) * c.headDim;
  const perLayer = 5 * c.hiddenSize + qkv + c.numHeads * (c.headDim + 1) + 3 * c.intermediateSize + 2;
  const layers = recompute ? c.numLayers * c.hiddenSize + 2 * perLayer : c.numLayers * perLayer;
  const bytesPerToken = 4 * (layers + 3 * c.hiddenSize);
  return Math.min(16384, Math.max(256, Math.floor(2 ** 30 / bytesPerToken)));
}

/** `loss` at these log-probs, its gradient checked to have one entry per example. */
function lossAt(loss: SequenceLoss, seqLogprobs: Float64Array): { loss: number; grad: Float64Array } {
  const result = loss(seqLogprobs);
  if (result.grad.length !== seqLogprobs.length) {
    throw new RangeError(`loss gave ${result.grad.length} gradients for ${seqLogprobs.length} sequences`);
  }
  return result;
}

/** normal(0, std) draws, both Box-Muller outputs used (initialising 100M weights takes seconds). */
function fillNormal(t: Float32Array, rng: Rng, std: number): void {
  for (let i = 0; i < t.length; i += 2) {
    let u = 0;
    while (u === 0) u = rng.float();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    const a = 2 * Math.PI * rng.float();
    t[i] = r * Math.cos(a);
    if (i + 1 < t.length) t[i + 1] = r * Math.sin(a);
  }
}

/** What an optimizer updates: a flat buffer, its gradients and its tensors. */
export interface Trainable {
  params: Float32Array;
  grads: Float32Array;
  layout: TensorSlot[];
}

/** One packed forward: rows of several sequences back to back. */
interface Packed {
  tokens: Int32Array;
  starts: Int32Array;
  targets: Int32Array;
  /** for every row with a target, the example it belongs to */
  owner: Int32Array;
}

export class CausalLM {
  private readonly slots = new Map<string, TensorSlot>();
  private gradBuffer: Float32Array | null = null;
  private attached: { adapter: LoraAdapter; train: boolean } | null = null;
  private native: NativeModel<Float32Array>;
  private matmulPrecision: ResolvedPrecision;
  private recomputes = false;
  private batchTokens: number | undefined;

  private constructor(
    readonly config: ModelConfig,
    readonly layout: TensorSlot[],
    readonly params: Float32Array,
  ) {
    for (const slot of layout) this.slots.set(slot.name, slot);
    this.matmulPrecision = resolvePrecision(defaultPrecision(), config.hiddenSize);
    this.native = new (engine().Model)(config, params, null);
    this.native.setPrecision(this.matmulPrecision);
  }

  /** The precision of this model's matrix products (src/model/precision.ts). */
  get precision(): ResolvedPrecision {
    return this.matmulPrecision;
  }

  set precision(p: Precision) {
    this.matmulPrecision = resolvePrecision(p, this.config.hiddenSize);
    this.native.setPrecision(this.matmulPrecision);
  }

  /**
   * Activation recomputation (gradient checkpointing) in training: each layer keeps only its input and
   * recomputes its activations right before its backward. Gradients are bit-identical for the same
   * batch split; activation memory falls to about one layer's, so the default `maxBatchTokens` grows.
   */
  get recompute(): boolean {
    return this.recomputes;
  }

  set recompute(on: boolean) {
    this.recomputes = on;
    this.native.setRecompute(on);
  }

  /**
   * Most tokens one native forward packs (0 = no limit). Training keeps activations for these tokens;
   * the default holds them to about 1 GiB (more tokens with `recompute`).
   */
  get maxBatchTokens(): number {
    return this.batchTokens ?? defaultBatchTokens(this.config, this.recomputes);
  }

  set maxBatchTokens(n: number) {
    this.batchTokens = n;
  }

  private static empty(config: ModelConfig): CausalLM {
    const { tensors, total } = engine().paramLayout(config);
    return new CausalLM(config, tensors, new Float32Array(total));
  }

  /**
   * A fresh model for training from scratch, as Hugging Face initialises Llama: weights normal(0, std),
   * RMSNorm weights 1, biases 0, the pad token's embedding 0. The same seed gives the same weights.
   */
  static init(config: ModelConfig, seed: number, std = 0.02): CausalLM {
    const model = CausalLM.empty(config);
    for (const slot of model.layout) {
      const t = model.tensor(slot.name);
      if (slot.name.endsWith("norm.weight")) t.fill(1);
      else if (slot.name.endsWith(".bias")) t.fill(0);
      else fillNormal(t, Rng.derive(seed, "init", slot.name), std);
    }
    if (config.padTokenId >= 0) model.embeddingRow(config.padTokenId).fill(0);
    return model;
  }

  /**
   * Loads DIR/config.json and DIR/model.safetensors (or its shards), and with `adapter` a PEFT LoRA
   * adapter directory applied unmerged. DIR may itself be an adapter checkpoint (see `isAdapterCheckpoint`):
   * its base, loaded the same way, with the adapter merged.
   */
  static load(dir: string, options: { adapter?: string } = {}): CausalLM {
    const model = isAdapterCheckpoint(dir) ? CausalLM.loadMerged(dir, [dir]) : CausalLM.loadWeights(dir);
    if (options.adapter !== undefined) model.attachAdapter(LoraAdapter.load(options.adapter, model.config));
    return model;
  }

  private static loadMerged(dir: string, chain: string[]): CausalLM {
    const parent = adapterBase(dir);
    if (chain.includes(parent))
      throw new DnoError(`${dir}: its chain of adapter bases loops back to ${parent}`);
    const model = isAdapterCheckpoint(parent)
      ? CausalLM.loadMerged(parent, [...chain, parent])
      : CausalLM.loadWeights(parent);
    model.attachAdapter(LoraAdapter.load(dir, model.config));
    model.mergeAdapter();
    return model;
  }

  private static loadWeights(dir: string): CausalLM {
    const model = CausalLM.empty(readConfig(dir));
    const loaded = new Set<string>();
    forEachCheckpointFile(dir, (reader, names) => {
      for (const name of names) {
        if (name.endsWith("rotary_emb.inv_freq")) continue; // recomputed from config.json, as HF does
        if (name === "lm_head.weight" && model.config.tieWordEmbeddings) continue;
        const slot = model.slots.get(name);
        if (!slot)
          throw new DnoError(`${reader.path}: tensor ${JSON.stringify(name)} is not in this architecture`);
        const shape = reader.entries.get(name)!.shape;
        if (shape.join(",") !== slot.shape.join(",")) {
          throw new DnoError(
            `${reader.path}: tensor ${name} has shape [${shape}], config.json implies [${slot.shape}]`,
          );
        }
        reader.readWeights(name, model.tensor(name));
        loaded.add(name);
      }
    });
    const missing = model.layout.filter((s) => !loaded.has(s.name)).map((s) => s.name);
    if (missing.length > 0) {
      throw new DnoError(
        `${dir}: the checkpoint lacks ${missing.length} tensor(s): ${missing.slice(0, 4).join(", ")}`,
      );
    }
    return model;
  }

  /** Writes config.json and model.safetensors (F32), loadable by Hugging Face transformers. */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    writeCheckpoint(
      dir,
      this.layout.map((s) => ({ name: s.name, shape: s.shape, data: this.tensor(s.name) })),
    );
    writeFileAtomic(join(dir, "config.json"), `${JSON.stringify(toHfConfig(this.config), null, 2)}\n`);
  }

  /** K samples per prompt with a KV cache; result[p][k] (see src/model/generate.ts). */
  generate(prompts: readonly (readonly number[])[], options: GenerateOptions): Promise<Sample[][]> {
    return generate(this, prompts, options);
  }

  /** A view (no copy) of one parameter tensor, by its Hugging Face name. */
  tensor(name: string): Float32Array {
    const s = this.slots.get(name);
    if (!s) throw new RangeError(`no parameter ${name}`);
    return this.params.subarray(s.offset, s.offset + s.size);
  }

  /** The LoRA adapter applied unmerged in every forward and sample, or null. */
  get adapter(): LoraAdapter | null {
    return this.attached?.adapter ?? null;
  }

  /**
   * Applies `adapter` (built for this config) unmerged. With `train`, training updates the adapter alone:
   * the base is frozen and gets no gradient buffer, no gradient and no optimizer state.
   */
  attachAdapter(adapter: LoraAdapter, options: { train?: boolean } = {}): void {
    if (
      adapter.modelConfig !== this.config &&
      JSON.stringify(adapter.modelConfig) !== JSON.stringify(this.config)
    ) {
      throw new DnoError("the adapter was built for another model config");
    }
    this.attached = { adapter, train: options.train ?? false };
    this.bindNative();
  }

  detachAdapter(): void {
    this.attached = null;
    this.bindNative();
  }

  /** Folds the attached adapter into the weights (W += scale B A) and detaches it. */
  mergeAdapter(): void {
    if (!this.attached) throw new DnoError("no adapter to merge");
    mergeLora(this.attached.adapter, (name) => this.tensor(name));
    this.detachAdapter();
  }

  /** The adapter when one trains, else every weight (gradient buffer allocated on first use). */
  get trainable(): Trainable {
    if (this.attached?.train) {
      const { adapter } = this.attached;
      return { params: adapter.params, grads: adapter.grads, layout: adapter.layout };
    }
    return { params: this.params, grads: this.baseGradients(), layout: this.layout };
  }

  private baseGradients(): Float32Array {
    if (!this.gradBuffer) {
      this.gradBuffer = new Float32Array(this.params.length);
      this.bindNative();
    }
    return this.gradBuffer;
  }

  /** The gradients of what trains (see `trainable`). */
  get grads(): Float32Array {
    return this.trainable.grads;
  }

  zeroGrad(): void {
    this.grads.fill(0);
  }

  private bindNative(): void {
    const a = this.attached;
    this.native = new (engine().Model)(this.config, this.params, a?.train ? null : this.gradBuffer);
    this.native.setPrecision(this.matmulPrecision);
    this.native.setRecompute(this.recomputes);
    if (a) this.native.setLora(a.adapter.spec, a.adapter.params, a.train ? a.adapter.grads : null);
  }

  /** SHA-256 of the parameters' float32 bytes, in layout order. */
  weightsSha256(): string {
    return createHash("sha256")
      .update(new Uint8Array(this.params.buffer, this.params.byteOffset, this.params.byteLength))
      .digest("hex");
  }

  /** log pi(response | prompt) for each example (no gradient). */
  sequenceLogprobs(examples: Example[]): Float64Array {
    const out = new Float64Array(examples.length);
    for (const batch of this.pack(examples)) this.forwardInto(batch, out, false);
    return out;
  }

  /**
   * log p(token t | tokens before it) for t = 1..T-1 of each sequence, and the logits at its last
   * position (the reference tool's `logprobs`).
   */
  tokenLogprobs(sequences: number[][]): { tokenLogprobs: Float32Array[]; lastLogits: Float32Array[] } {
    const V = this.config.vocabSize;
    const tokenLogprobs: Float32Array[] = [];
    const lastLogits: Float32Array[] = [];
    for (const group of this.groups(sequences.map((s) => s.length))) {
      const seqs = group.map((i) => sequences[i]!);
      seqs.forEach((s, k) => {
        if (s.length === 0) throw new DnoError(`sequence ${group[k]}: empty`);
        this.checkTokens(s, `sequence ${group[k]}`);
      });
      const n = seqs.reduce((a, s) => a + s.length, 0);
      const tokens = new Int32Array(n);
      const targets = new Int32Array(n).fill(-1);
      const starts = new Int32Array(seqs.length + 1);
      seqs.forEach((s, k) => {
        const r0 = starts[k]!;
        tokens.set(s, r0);
        for (let t = 1; t < s.length; t++) targets[r0 + t - 1] = s[t]!;
        starts[k + 1] = r0 + s.length;
      });
      const logp = new Float32Array(n);
      const last = new Float32Array(seqs.length * V);
      this.native.forward(tokens, starts, targets, logp, false, last);
      seqs.forEach((s, k) => {
        tokenLogprobs.push(logp.slice(starts[k]!, starts[k]! + s.length - 1));
        lastLogits.push(last.slice(k * V, (k + 1) * V));
      });
    }
    return { tokenLogprobs, lastLogits };
  }

  /**
   * Runs the forward pass, asks `loss` for d loss / d (sequence log-prob), backpropagates it and ADDS
   * the parameter gradients into `grads` (call zeroGrad between optimizer steps). Batches larger than
   * maxBatchTokens are processed piecewise: one forward + backward per piece when the loss has groups
   * (SequenceLoss.groupOf), otherwise log-probs first, then forward + backward per piece.
   */
  accumulateGradients(examples: Example[], loss: SequenceLoss): { loss: number; seqLogprobs: Float64Array } {
    if (!this.attached?.train) this.baseGradients(); // binds a native model that fills them
    const batches = this.pack(examples, loss.groupOf);
    const seqLogprobs = new Float64Array(examples.length);
    if (batches.length === 1 || loss.groupOf) {
      let result: { loss: number; grad: Float64Array } | undefined;
      for (const batch of batches) {
        this.forwardInto(batch, seqLogprobs, true);
        result = lossAt(loss, seqLogprobs);
        this.backwardFrom(batch, result.grad);
      }
      return { loss: (result ?? lossAt(loss, seqLogprobs)).loss, seqLogprobs };
    }
    for (const batch of batches) this.forwardInto(batch, seqLogprobs, false);
    const result = lossAt(loss, seqLogprobs);
    for (const batch of batches) {
      this.forwardInto(batch, new Float64Array(examples.length), true);
      this.backwardFrom(batch, result.grad);
    }
    return { loss: result.loss, seqLogprobs };
  }

  private backwardFrom(batch: Packed, seqGrad: Float64Array): void {
    const dlogp = new Float32Array(batch.tokens.length);
    for (let n = 0; n < batch.targets.length; n++) {
      if (batch.targets[n]! >= 0) dlogp[n] = seqGrad[batch.owner[n]!]!;
    }
    this.native.backward(dlogp);
  }

  private forwardInto(batch: Packed, seqLogprobs: Float64Array, keep: boolean): void {
    const logp = new Float32Array(batch.tokens.length);
    this.native.forward(batch.tokens, batch.starts, batch.targets, logp, keep, null);
    for (let n = 0; n < logp.length; n++) {
      if (batch.targets[n]! >= 0) seqLogprobs[batch.owner[n]!]! += logp[n]!;
    }
  }

  private embeddingRow(token: number): Float32Array {
    const C = this.config.hiddenSize;
    return this.tensor("model.embed_tokens.weight").subarray(token * C, (token + 1) * C);
  }

  private checkTokens(ids: number[], where: string): void {
    const V = this.config.vocabSize;
    for (let i = 0; i < ids.length; i++) {
      const t = ids[i]!;
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new DnoError(`${where}: token ${i} is ${t}, outside the vocabulary [0, ${V})`);
      }
    }
  }

  /** Indices grouped so each group's total length stays within maxBatchTokens (a longer item stands alone). */
  private groups(lengths: number[]): number[][] {
    const out: number[][] = [];
    let current: number[] = [];
    let tokens = 0;
    lengths.forEach((len, i) => {
      if (current.length > 0 && this.maxBatchTokens > 0 && tokens + len > this.maxBatchTokens) {
        out.push(current);
        current = [];
        tokens = 0;
      }
      current.push(i);
      tokens += len;
    });
    if (current.length > 0) out.push(current);
    return out;
  }

  /** `groups` of whole `groupOf` groups (their examples adjacent, groups in order of first appearance). */
  private groupedPieces(lengths: number[], groupOf: (example: number) => number): number[][] {
    const members = new Map<number, number[]>();
    lengths.forEach((_, i) => {
      const g = groupOf(i);
      const list = members.get(g);
      if (list) list.push(i);
      else members.set(g, [i]);
    });
    const units = [...members.values()];
    const unitLengths = units.map((u) => u.reduce((a, i) => a + lengths[i]!, 0));
    return this.groups(unitLengths).map((piece) => piece.flatMap((u) => units[u]!));
  }

  /**
   * Examples as packed batches: each is prompt + response minus the last token, scoring the response.
   * With `groupOf`, a group's examples share a batch.
   */
  private pack(examples: Example[], groupOf?: (example: number) => number): Packed[] {
    examples.forEach((e, i) => {
      if (e.prompt.length === 0) throw new DnoError(`example ${i}: the prompt needs at least one token`);
      this.checkTokens(e.prompt, `example ${i} prompt`);
      this.checkTokens(e.response, `example ${i} response`);
    });
    const lengths = examples.map((e) =>
      e.response.length === 0 ? 0 : e.prompt.length + e.response.length - 1,
    );
    const pieces = groupOf ? this.groupedPieces(lengths, groupOf) : this.groups(lengths);
    return pieces.map((group) => {
      const live = group.filter((i) => lengths[i]! > 0);
      const n = live.reduce((a, i) => a + lengths[i]!, 0);
      const tokens = new Int32Array(n);
      const targets = new Int32Array(n).fill(-1);
      const owner = new Int32Array(n).fill(-1);
      const starts = new Int32Array(live.length + 1);
      live.forEach((i, k) => {
        const { prompt, response } = examples[i]!;
        const r0 = starts[k]!;
        tokens.set(prompt, r0);
        tokens.set(response.slice(0, -1), r0 + prompt.length);
        for (let j = 0; j < response.length; j++) {
          targets[r0 + prompt.length - 1 + j] = response[j]!;
          owner[r0 + prompt.length - 1 + j] = i;
        }
        starts[k + 1] = r0 + lengths[i]!;
      });
      return { tokens, starts, targets, owner };
    });
  }
}
