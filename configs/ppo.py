r"""PPO RLHF (InstructGPT / TRL semantics) from an instruction-tuned model and a reward model.

Variants (`configs/ppo.py:<variant>[,runlocal=True,init_from=<model>,reward_model=<workdir>]`):
  smollm2_hh  SmolLM2-135M-Instruct + LoRA and a value head; prompts from HH-RLHF harmless-base;
              reward from configs/reward.py:smollm2_hh; KL penalty 0.05 to the frozen model:
              python train.py --config=configs/ppo.py:smollm2_hh --workdir=runs/ppo_smollm2
              Logs per rollout: rollout/reward, rollout/kl, rollout/response_length, and per step
              value_loss, clip_fraction, approx_kl; at the end the win rate against the reference
              on held-out prompts, judged by the reward model. The full run is an accelerator
              recipe; on this CPU --config.total_steps=8 --config.eval_every=8
              --config.checkpoint_every=4 --config.ppo.eval_prompts=16 (2 rollouts) takes 7
              minutes. Expected there: rollout/kl 0.0 then ~0.06 nats, value loss ~0.01-0.03,
              judged win rate ~0.5 (reports/README.md "Fine-tuning demonstrations").
  tiny_hh     our pretrained default model (runs/tiny) and a reward model trained from it
              (configs/reward.py:tiny_hh -> runs/rm_tiny); Alpaca template.
Steps: each rollout of ppo.rollout_size prompts is ppo.epochs x rollout_size / batch_size
optimizer steps; checkpoints fall on rollout boundaries.
"""

from configs import common
from training.config import base_config


def get_config(arg="smollm2_hh"):
  arg = common.parse_arg(arg, variant="smollm2_hh", runlocal=False, init_from="", reward_model="")
  c = base_config()
  c.objective = "ppo"
  c.model.score_head = True  # the value head, on the policy's trunk (TRL's value-head model)
  c.finetune.update(train_files=("preference/hh_rlhf_harmless_base_test.jsonl.gz",), pairs_format="hh",
                    held_out_fraction=0.1)
  c.ppo.update(rollout_size=16, epochs=2, max_new_tokens=48, temperature=1.0, kl_coef=0.05,
               gamma=1.0, lam=0.95, clip=0.2, value_clip=0.2, value_coef=0.1, eval_prompts=32)
  c.optimizer.update(warmup_steps=2, weight_decay=0.0, min_lr_ratio=1.0, grad_clip_norm=1.0)
  c.update(log_every=1, eval_batches=0, keep_checkpoints=2, seq_len=320, batch_size=8)  # 4 steps a rollout
  c.sample.update(prompt="How do I pick a lock?", temperature=0.0, max_new_tokens=48)
  if arg.variant == "smollm2_hh":
    c.init_from = "smollm2-135m-instruct"
    c.reward_model = "runs/rm_smollm2"
    c.model.update(lora_rank=16, lora_alpha=32.0, lora_targets=("wq", "wk", "wv", "wo"))
    c.update(total_steps=200, eval_every=100, checkpoint_every=20)
    c.optimizer.learning_rate = 1e-4
  elif arg.variant == "tiny_hh":
    c.init_from = "runs/tiny"
    c.reward_model = "runs/rm_tiny"
    c.finetune.template = "alpaca"
    c.update(total_steps=200, eval_every=100, checkpoint_every=20)
    c.optimizer.learning_rate = 1e-5
  else:
    raise ValueError(f"configs/ppo.py: unknown variant {arg.variant!r}; choose smollm2_hh or tiny_hh")
  common.apply_finetune_args(c, arg, local_batch_size=2, local_seq_len=128)
  if arg.runlocal:
    c.ppo.update(rollout_size=4, epochs=1)  # 2 steps a rollout
    c.eval_every = 4
  return c
