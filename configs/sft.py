r"""Supervised fine-tuning: loss on the replies only, packed examples, LoRA or all weights.

Variants (`configs/sft.py:<variant>[,runlocal=True]`):
  smollm2_fireact  SmolLM2-135M-Instruct + LoRA (rank 16 on attention and MLP) on FireAct's 500
                   HotpotQA ReAct trajectories (ChatML; observations are user turns, never trained):
                   python train.py --config=configs/sft.py:smollm2_fireact --workdir=runs/sft_fireact
                   then HotpotQA in FireAct's chat format, before and after:
                   python -m eval.run --config=configs/eval.py:fireact --workdir=runs/sft_fireact
                   Expected (this 2-core CPU, 17 minutes): held-out loss 0.66 nats/token on 25
                   held-out trajectories; the model answers in FireAct's Thought/Action format
                   (reports/README.md "Fine-tuning demonstrations": HotpotQA EM and F1 before and after).
  smollm2_alpaca   SmolLM2-135M-Instruct, all weights, on the LLaMA-Factory Alpaca demo (999 rows).
  tiny_alpaca      our pretrained default model (runs/tiny from configs/llama.py:tiny) with the
                   Stanford Alpaca template (it has no ChatML tokens), all weights:
                   python train.py --config=configs/sft.py:tiny_alpaca --workdir=runs/tiny_alpaca
Other args: `runlocal=True` (a few steps, for a smoke run), `init_from=<model>` (another base).
The template is saved in the workdir's config.json; eval and chat read it back.
"""

from configs import common
from training.config import base_config


def get_config(arg="smollm2_fireact"):
  arg = common.parse_arg(arg, variant="smollm2_fireact", runlocal=False, init_from="")
  c = base_config()
  c.objective = "lm"
  c.finetune.held_out_fraction = 0.05
  c.optimizer.update(warmup_steps=10, min_lr_ratio=0.1, weight_decay=0.0)
  c.update(log_every=5, eval_batches=4, keep_checkpoints=2)
  c.sample.update(temperature=0.0, max_new_tokens=48)
  if arg.variant == "smollm2_fireact":
    c.init_from = "smollm2-135m-instruct"
    c.finetune.update(train_files=("react/fireact/data/finetune/gpt_format/hotpotqa.jsonl",), template="chatml")
    c.model.update(lora_rank=16, lora_alpha=32.0, lora_dropout=0.05,
                   lora_targets=("wq", "wk", "wv", "wo", "gate", "up", "down"))
    # ~230 tokens per trajectory, ~8 per step of 4 x 512 tokens: 24 steps are one pass over the
    # first 200 (this CPU trains SmolLM2 at ~65 tokens/s: 13 minutes). On an accelerator drop
    # the limit (finetune.limit=0) and train 3 epochs as FireAct did.
    c.finetune.limit = 200
    c.update(total_steps=24, batch_size=4, seq_len=512, eval_every=12, checkpoint_every=6)
    c.optimizer.update(learning_rate=1e-3, warmup_steps=3, weight_decay=0.0)
    c.sample.prompt = "Which magazine was started first, Arthur's Magazine or First for Women?"
  elif arg.variant == "smollm2_alpaca":
    c.init_from = "smollm2-135m-instruct"
    c.finetune.update(train_files=("alpaca/llamafactory_alpaca_en_demo.json",), template="chatml")
    c.update(total_steps=100, batch_size=4, seq_len=512, eval_every=50, checkpoint_every=25)
    c.optimizer.update(learning_rate=2e-5)
    c.sample.prompt = "Give three tips for staying healthy."
  elif arg.variant == "tiny_alpaca":
    c.init_from = "runs/tiny"
    c.finetune.update(train_files=("alpaca/llamafactory_alpaca_en_demo.json",), template="alpaca")
    c.update(total_steps=200, batch_size=16, seq_len=256, eval_every=100, checkpoint_every=50)
    c.optimizer.update(learning_rate=1e-3)
    c.sample.prompt = "Give three tips for staying healthy."
  else:
    raise ValueError(f"configs/sft.py: unknown variant {arg.variant!r}; "
                     "choose smollm2_fireact, smollm2_alpaca or tiny_alpaca")
  common.apply_finetune_args(c, arg, local_batch_size=2, local_seq_len=256)
  return c
