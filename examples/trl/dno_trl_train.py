#!/usr/bin/env python3
"""Train pi_{t+1} for a dno run with Hugging Face TRL (>= 1.0, transformers 5), honouring dno's
external-trainer contract (README "External trainers"):

    trainer:
      kind: command
      command: accelerate launch --config_file examples/trl/accelerate/single_gpu.yaml
               examples/trl/dno_trl_train.py --policy {policy} --pairs {pairs} --args {args} --out {out}

What it does, and why:
- It trains on the token ids dno sampled and judged (`prompt_ids`, `chosen_ids`, `rejected_ids`), never
  on re-tokenised text: TRL's own dataset preparation appends EOS and tokenises prompt + completion
  jointly, which yields other completion tokens than the sampled ones, so the reference log-probs in
  the file would no longer belong to what is trained on. `IdsDPOTrainer` passes the pre-tokenised rows
  through unchanged.
- The reference log-probs are read from the file (`ref_chosen_logps`, `ref_rejected_logps`: pi_t for
  DNO-Prct), not recomputed: `precompute_ref_log_probs=True` keeps TRL from loading a reference model,
  and `IdsDPOTrainer` hands it the file's values instead of computing them. `--check-reference N`
  recomputes them for the first N pairs under the policy being trained (which is pi_t at the start) and
  stops when they disagree: a wrong tokenizer, checkpoint or file shows up before any step is taken.
- The loss is TRL's `loss_type` for dno's objective (LOSS_TYPES); objectives TRL has no loss for stop
  with a message. The optimiser and schedule follow train-args.json: AdamW, linear warmup then linear
  decay to 0, weight decay, gradient clipping, `epochs` passes, `batch_size` pairs per optimiser step
  (split over devices and gradient accumulation), bf16 when `precision` is bf16, gradient checkpointing
  when `recompute` is set, PEFT LoRA when `lora` is set (then `{out}` holds an adapter).
- No truncation (`max_length=None`): a truncated sequence would not match its reference log-prob.

This file is written against TRL's source (trl/trainer/dpo_trainer.py, dpo_config.py at 1.x); it was
not executed in dno's CI, which has no Python ML stack.
"""

import argparse
import json
import math
import os
import sys

import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import DPOConfig, DPOTrainer

# dno objective -> TRL loss_type. The reference each one needs is already in the file's ref_* columns
# (pi_t for dno-prct, sppo; pi_1 for dpo, ipo), so one mapping serves both.
LOSS_TYPES = {
    "dno-prct": "sigmoid",
    "dpo": "sigmoid",
    "spin": "sigmoid",
    # TRL divides each log-ratio by the completion length before the square; dno's IPO does not.
    "ipo": "ipo",
    # TRL's sppo_hard is dno's SPPO with win rates 1 (chosen) and 0 (rejected).
    "sppo": "sppo_hard",
}
UNSUPPORTED = {
    "dno": "per-pair soft labels sigma(r(y_w) - r(y_l)) (TRL's label_smoothing is one constant for all pairs); "
    "use objective dno-prct, or `dno train`",
    "inpo": "a second (anchor) reference; use `dno train`",
}
ID_COLUMNS = ["prompt_ids", "chosen_ids", "rejected_ids"]
REF_COLUMNS = ["ref_chosen_logps", "ref_rejected_logps"]


class IdsDPOTrainer(DPOTrainer):
    """DPOTrainer on rows that are already token ids and already carry their reference log-probs."""

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        missing = [c for c in ID_COLUMNS + REF_COLUMNS if c not in dataset.column_names]
        if missing:
            raise ValueError(f"{dataset_name}: the pairs file lacks {missing} (dno's contract file has them)")
        return dataset.select_columns(ID_COLUMNS + REF_COLUMNS)

    def _precompute_ref_logps(self, dataset, name, batch_size):
        # The file's values are pi_t's log-probs on exactly these ids: use them as they are.
        return dataset


def fail(message):
    print(f"dno_trl_train: error: {message}", file=sys.stderr)
    sys.exit(2)


def read_args(path):
    with open(path, encoding="utf8") as f:
        args = json.load(f)
    objective = args["objective"]
    if objective in UNSUPPORTED:
        fail(f"{path}: objective {objective} needs {UNSUPPORTED[objective]}")
    if objective not in LOSS_TYPES:
        fail(f"{path}: unknown objective {objective}")
    return args


def sequence_logps(model, prompt_ids, completion_ids):
    """log pi(completion | prompt), summed over the completion's tokens."""
    ids = torch.tensor([prompt_ids + completion_ids], device=model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, :-1].float()
    logps = torch.log_softmax(logits, dim=-1).gather(-1, ids[0, 1:].unsqueeze(-1)).squeeze(-1)
    return logps[len(prompt_ids) - 1 :].sum().item()


def check_reference(model, dataset, n, tolerance):
    """The file's reference log-probs against the starting policy's (= pi_t for DNO-Prct)."""
    worst = 0.0
    for row in dataset.select(range(min(n, len(dataset)))):
        for side in ("chosen", "rejected"):
            mine = sequence_logps(model, row["prompt_ids"], row[f"{side}_ids"])
            worst = max(worst, abs(mine - row[f"ref_{side}_logps"]))
    if worst > tolerance:
        fail(
            f"the policy's log-probs differ from the file's reference log-probs by up to {worst:.3f} nats "
            f"(tolerance {tolerance}): wrong checkpoint or tokenizer, or the objective's reference is not pi_t"
        )
    print(f"dno_trl_train: reference log-probs checked on {n} pairs (max difference {worst:.4f} nats)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--policy", required=True, help="pi_t: a Hugging Face checkpoint directory ({policy})")
    p.add_argument("--pairs", required=True, help="pairs.trl.jsonl ({pairs})")
    p.add_argument("--args", required=True, help="train-args.json ({args})")
    p.add_argument("--out", required=True, help="where pi_{t+1} (or its LoRA adapter) goes ({out})")
    p.add_argument("--per-device-batch-size", type=int, default=4)
    p.add_argument(
        "--check-reference", type=int, default=8, metavar="N", help="pairs to check on one device (0: none)"
    )
    p.add_argument("--check-tolerance", type=float, default=0.5, help="nats (bf16 forward passes drift)")
    opts = p.parse_args()
    args = read_args(opts.args)

    bf16 = args["precision"] == "bf16"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = opts.per_device_batch_size * world
    accumulation = max(1, math.ceil(args["batch_size"] / per_step))
    if accumulation * per_step != args["batch_size"]:
        print(
            f"dno_trl_train: batch_size {args['batch_size']} is not a multiple of {per_step} "
            f"({world} devices x {opts.per_device_batch_size}); using {accumulation * per_step}",
            file=sys.stderr,
        )

    config = DPOConfig(
        output_dir=opts.out,
        loss_type=[LOSS_TYPES[args["objective"]]],
        beta=args["beta"],
        learning_rate=args["lr"],
        lr_scheduler_type="linear",
        warmup_steps=args["warmup_steps"],
        weight_decay=args["weight_decay"],
        max_grad_norm=args["grad_clip"],
        adam_beta1=0.9,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        num_train_epochs=args["epochs"],
        per_device_train_batch_size=opts.per_device_batch_size,
        gradient_accumulation_steps=accumulation,
        seed=args["seed"],
        data_seed=args["seed"],
        bf16=bf16,
        fp16=False,
        gradient_checkpointing=args.get("recompute", False),
        # Non-reentrant checkpointing needs no input that requires grad, which a frozen (LoRA) base lacks.
        gradient_checkpointing_kwargs={"use_reentrant": False},
        precompute_ref_log_probs=True,
        max_length=None,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
    )
    tokenizer = AutoTokenizer.from_pretrained(opts.policy)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    # After the config: under DeepSpeed ZeRO-3 the weights are then loaded straight into their shards.
    model = AutoModelForCausalLM.from_pretrained(opts.policy, dtype=torch.bfloat16 if bf16 else torch.float32)
    dataset = load_dataset("json", data_files=opts.pairs, split="train")
    if opts.check_reference > 0 and world == 1:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        check_reference(model.to(device), dataset, opts.check_reference, opts.check_tolerance)

    peft_config = None
    if args.get("lora") is not None:
        from peft import LoraConfig

        lora = args["lora"]  # dno's train.lora: PEFT's names, alpha defaulting to r
        peft_config = LoraConfig(
            r=lora["r"],
            lora_alpha=lora.get("alpha", lora["r"]),
            lora_dropout=0.0,
            target_modules=lora["target_modules"],
            use_rslora=lora.get("rslora", False),
            task_type="CAUSAL_LM",
        )

    trainer = IdsDPOTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    # Full weights (config.json, safetensors, tokenizer) or, with LoRA, the PEFT adapter.
    trainer.save_model(opts.out)
    if trainer.accelerator.is_main_process:
        tokenizer.save_pretrained(opts.out)


if __name__ == "__main__":
    main()
