r"""Reward models: the decoder with a scalar head, Bradley-Terry loss on preference pairs.

Variants (`configs/reward.py:<variant>[,runlocal=True,init_from=<model>]`):
  smollm2_hh       SmolLM2-135M-Instruct, frozen, with a trained scalar head (a linear probe on
                   its last hidden state) on 160 HH-RLHF harmless-base pairs; held-out pairwise
                   accuracy on 100 held-out pairs.
                   python train.py --config=configs/reward.py:smollm2_hh --workdir=runs/rm_smollm2
                   Expected: held-out pairwise accuracy 0.61 over 100 pairs (chance 0.5), 8 minutes.
  smollm2_hh_lora  the same with LoRA (rank 16, attention) under the head, all 2,081 training pairs,
                   2 epochs: the accelerator recipe (InstructGPT's 6B reward model: 72.4%).
  tiny_hh          our pretrained default model (runs/tiny), all weights, Alpaca template.
Held-out pairs are chosen by a hash of the prompt (a prompt is never on both sides).
"""

from configs import common
from training.config import base_config


def get_config(arg="smollm2_hh"):
  arg = common.parse_arg(arg, variant="smollm2_hh", runlocal=False, init_from="")
  c = base_config()
  c.objective = "reward"
  c.model.score_head = True
  c.finetune.update(train_files=("preference/hh_rlhf_harmless_base_test.jsonl.gz",), pairs_format="hh",
                    held_out_fraction=0.1)
  c.optimizer.update(warmup_steps=2, weight_decay=0.0, min_lr_ratio=0.1)
  c.update(log_every=5, eval_batches=0, keep_checkpoints=2, seq_len=256, batch_size=16)  # 8 pairs a step
  c.sample.prompt = ""  # a reward model scores text; it does not write any
  if arg.variant == "smollm2_hh":
    c.init_from = "smollm2-135m-instruct"
    c.model.update(lora_rank=1, lora_targets=())  # adapters nowhere: only the head is trained
    c.finetune.update(limit=160, held_out_limit=100)
    c.update(total_steps=20, eval_every=20, checkpoint_every=5)
    c.optimizer.learning_rate = 3e-3
  elif arg.variant == "smollm2_hh_lora":
    c.init_from = "smollm2-135m-instruct"
    c.model.update(lora_rank=16, lora_alpha=32.0, lora_targets=("wq", "wk", "wv", "wo"))
    c.update(total_steps=520, eval_every=130, checkpoint_every=65)
    c.optimizer.learning_rate = 1e-4
  elif arg.variant == "tiny_hh":
    c.init_from = "runs/tiny"
    c.finetune.template = "alpaca"
    c.update(total_steps=260, eval_every=130, checkpoint_every=65)
    c.optimizer.learning_rate = 1e-4
  else:
    raise ValueError(f"configs/reward.py: unknown variant {arg.variant!r}; "
                     "choose smollm2_hh, smollm2_hh_lora or tiny_hh")
  common.apply_finetune_args(c, arg, local_batch_size=4, local_seq_len=128)
  return c
