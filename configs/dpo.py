r"""Direct preference optimisation from an instruction-tuned model, against its frozen self.

Variants (`configs/dpo.py:<variant>[,runlocal=True,init_from=<model>,reward_model=<workdir>]`):
  smollm2_hh   SmolLM2-135M-Instruct (already instruction-tuned: the SFT model) + LoRA, beta 0.1,
               on HH-RLHF harmless-base pairs; at the end the reward model of
               configs/reward.py:smollm2_hh judges DPO against SFT on 32 held-out prompts:
               python train.py --config=configs/reward.py:smollm2_hh --workdir=runs/rm_smollm2
               python train.py --config=configs/dpo.py:smollm2_hh --workdir=runs/dpo_smollm2
               Expected (14 minutes): win rate 0.59 over 16 held-out prompts, KL 1.4 nats per
               response, responses 43 vs 45 tokens; DPO loss 0.69 -> 0.62 (reports/README.md "Fine-tuning
               demonstrations", with benchmarks before and after from eval.run).
  smollm2_demo the LLaMA-Factory DPO demo pairs (long: 1,024-token rows), for an accelerator.
  tiny_hh      our pretrained default model (runs/tiny), Alpaca template, all weights.
dpo.reference: precomputed (one reference pass over the training pairs before the first step) or
on_the_fly (a reference forward pass in every step). Measured here (SmolLM2, LoRA, 4 pairs of 256
tokens a step): 12.0 s/step precomputed (+1.3 s per pair once) against 17.5 s/step on the fly,
with identical losses; precomputing breaks even over the first epoch and saves 31% a step after it.
"""

from configs import common
from training.config import base_config


def get_config(arg="smollm2_hh"):
  arg = common.parse_arg(arg, variant="smollm2_hh", runlocal=False, init_from="", reward_model="")
  c = base_config()
  c.objective = "dpo"
  c.dpo.update(beta=0.1, reference="precomputed")  # measured: reports/README.md
  c.finetune.update(train_files=("preference/hh_rlhf_harmless_base_test.jsonl.gz",), pairs_format="hh",
                    held_out_fraction=0.1)
  c.optimizer.update(warmup_steps=2, weight_decay=0.0, min_lr_ratio=0.1)
  c.update(log_every=2, eval_batches=4, keep_checkpoints=2, seq_len=256, batch_size=8)  # 4 pairs a step
  c.ppo.update(max_new_tokens=48, temperature=1.0, eval_prompts=32)  # the judged comparison's sampling
  c.sample.update(prompt="How do I pick a lock?", temperature=0.0, max_new_tokens=48)
  if arg.variant == "smollm2_hh":
    c.init_from = "smollm2-135m-instruct"
    c.reward_model = "runs/rm_smollm2"
    c.model.update(lora_rank=16, lora_alpha=32.0, lora_targets=("wq", "wk", "wv", "wo"))
    c.finetune.update(limit=64, held_out_limit=16)
    c.update(total_steps=16, eval_every=16, checkpoint_every=4)
    c.optimizer.learning_rate = 5e-4
  elif arg.variant == "smollm2_demo":
    c.init_from = "smollm2-135m-instruct"
    c.finetune.update(train_files=("preference/llamafactory_dpo_en_demo.json",), pairs_format="dpo")
    c.model.update(lora_rank=16, lora_alpha=32.0, lora_targets=("wq", "wk", "wv", "wo"))
    c.update(seq_len=1024, total_steps=200, eval_every=50, checkpoint_every=50)
    c.optimizer.learning_rate = 5e-5
  elif arg.variant == "tiny_hh":
    c.init_from = "runs/tiny"
    c.finetune.template = "alpaca"
    c.update(total_steps=200, eval_every=100, checkpoint_every=50, batch_size=16)
    c.optimizer.learning_rate = 1e-5
  else:
    raise ValueError(f"configs/dpo.py: unknown variant {arg.variant!r}; choose smollm2_hh, smollm2_demo or tiny_hh")
  common.apply_finetune_args(c, arg, local_batch_size=4, local_seq_len=128)
  return c
