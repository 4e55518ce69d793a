/**
 * AdamW (Loshchilov & Hutter; as torch.optim.AdamW) over what a CausalLM trains (its flat parameter
 * buffer, or its LoRA adapter's when one trains), with global gradient-norm clipping. Biases and
 * RMSNorm weights get no weight decay (as HF's Trainer). The moments
 * live in two Float32Arrays beside the parameters; the update runs natively on the thread pool.
 */
import { engine } from "../engine/index.js";
import type { CausalLM, Trainable } from "../model/model.js";

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** decoupled weight decay (default 0) */
  weightDecay?: number;
  /** clip the global gradient norm to this (default 1; 0 = no clipping) */
  maxGradNorm?: number;
}

/** A NaN or infinite loss or gradient: the step is refused before any parameter changes. */
export class NonFiniteError extends Error {
  override name = "NonFiniteError";
}

export interface StepInfo {
  lr: number;
  /** global gradient norm before clipping */
  gradNorm: number;
}

export class AdamW {
  readonly m: Float32Array;
  readonly v: Float32Array;
  /** optimizer steps taken */
  step = 0;
  private readonly opts: Required<AdamWOptions>;
  /** contiguous parameter ranges and whether they decay */
  private readonly ranges: { offset: number; length: number; decay: boolean }[] = [];
  /** the model's trainable buffers when the optimizer was made (its adapter, or every weight) */
  private readonly target: Trainable;

  constructor(
    readonly model: CausalLM,
    options: AdamWOptions = {},
  ) {
    this.opts = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, maxGradNorm: 1, ...options };
    this.target = model.trainable;
    this.m = new Float32Array(this.target.params.length);
    this.v = new Float32Array(this.target.params.length);
    for (const slot of this.target.layout) {
      const decay = !(slot.name.endsWith(".bias") || slot.name.endsWith("norm.weight"));
      const last = this.ranges[this.ranges.length - 1];
      if (last && last.decay === decay && last.offset + last.length === slot.offset) last.length += slot.size;
      else this.ranges.push({ offset: slot.offset, length: slot.size, decay });
    }
  }

  /** Clips the model's gradients to maxGradNorm and applies one update with learning rate lr. */
  update(lr: number): StepInfo {
    const e = engine();
    const { params, grads } = this.target;
    const gradNorm = Math.sqrt(e.sumSquares(grads));
    if (!Number.isFinite(gradNorm)) throw new NonFiniteError(`the gradient norm is ${gradNorm}`);
    const max = this.opts.maxGradNorm;
    if (max > 0 && gradNorm > max) e.scale(grads, max / (gradNorm + 1e-6)); // torch's clip_grad_norm_
    this.step++;
    const { beta1, beta2, eps, weightDecay } = this.opts;
    for (const r of this.ranges) {
      e.adamw(
        params,
        grads,
        this.m,
        this.v,
        r.offset,
        r.length,
        lr,
        beta1,
        beta2,
        eps,
        r.decay ? weightDecay : 0,
        this.step,
      );
    }
    return { lr, gradNorm };
  }
}
