/**
 * One optimizer step with gradient accumulation: the gradients of several micro-batches are summed,
 * averaged, clipped and applied. Each micro-batch's loss is a mean over its own examples, so the step
 * minimises the mean of the micro-batch losses.
 */
import { engine } from "../engine/index.js";
import type { CausalLM, Example, SequenceLoss } from "../model/model.js";
import { type AdamW, NonFiniteError, type StepInfo } from "./adamw.js";

export interface MicroBatch {
  examples: Example[];
  loss: SequenceLoss;
}

export function trainStep(
  model: CausalLM,
  optimizer: AdamW,
  microBatches: MicroBatch[],
  lr: number,
): StepInfo & { loss: number } {
  if (microBatches.length === 0) throw new RangeError("trainStep: no micro-batches");
  model.zeroGrad();
  let loss = 0;
  for (const mb of microBatches) loss += model.accumulateGradients(mb.examples, mb.loss).loss;
  if (!Number.isFinite(loss)) throw new NonFiniteError(`the loss is ${loss}`);
  if (microBatches.length > 1) engine().scale(model.grads, 1 / microBatches.length);
  return { ...optimizer.update(lr), loss: loss / microBatches.length };
}
