"""PaLM-style decoders (the PaLM+RLHF architecture): parallel attention + MLP block, multi-query
attention, SwiGLU, rotary, shared input/output embedding, LayerNorm without bias, z-loss 1e-4.

Variants (`configs/palm.py:<variant>`):
  tiny     llama.py:tiny's width, data and schedule with PaLM's block (2.3M params): 10.5 minutes
           end to end on a 2-core CPU (3.8k tokens/s).
           python train.py --config=configs/palm.py:tiny --workdir=runs/palm_tiny
           Expected: held-out bits-per-byte 1.74 at step 550 (llama.py:tiny: 1.84).
  8b 62b 540b  the PaLM paper's dimensions (Chowdhery et al. 2022, Table 1), 256k vocab:
           python train.py --config=configs/palm.py:8b --workdir=runs/plan8b --dry_run \\
               --config.cost.device_kind="TPU v4" --config.cost.device_count=512
           Expected: 8.63B / 62.50B / 540.35B parameters.
Other args: `runlocal=True` shrinks any variant to a seconds-long smoke run.
"""

from configs import common
from models.config import model_config
from training.config import base_config

# name: (layers, embed, heads, head_dim)
PAPER = {
    "8b": (32, 4096, 16, 256),
    "62b": (64, 8192, 32, 256),
    "540b": (118, 18432, 48, 256),
}


def get_config(arg="tiny"):
  arg = common.parse_arg(arg, variant="tiny", runlocal=False)
  c = base_config()
  c.model = model_config(block="palm", norm="layer", num_kv_heads=1, tie_embeddings=True,
                                z_loss=1e-4, init_std=1.0)
  if arg.variant == "tiny":
    # llama.py:tiny's width and schedule with PaLM's block, for a like-for-like comparison.
    c.model.update(vocab_size=4096, num_layers=4, embed_dim=192, num_heads=6, head_dim=32, mlp_dim=512,
                   init_std=0.02)
    c.update(total_steps=550, batch_size=16, seq_len=256, eval_every=110, checkpoint_every=110,
             log_every=10)
    c.optimizer.update(learning_rate=3e-3, warmup_steps=50)
  elif arg.variant in PAPER:
    layers, embed, heads, head_dim = PAPER[arg.variant]
    c.model.update(vocab_size=256000, num_layers=layers, embed_dim=embed, num_heads=heads,
                   head_dim=head_dim, mlp_dim=4 * embed, dtype="bfloat16", remat="save_dots")
    # The paper: 2048-token sequences, batch ramped to 1-4M tokens, 780B tokens; we use the final
    # batch of 2048 sequences for planning, with AdamW in place of Adafactor.
    c.update(batch_size=2048, seq_len=2048, total_steps=int(780e9 // (2048 * 2048)))
    c.optimizer.update(learning_rate=1e-4, warmup_steps=10000)
    c.mesh.update(data=1, fsdp=-1, tensor=1)
  else:
    raise ValueError(f"configs/palm.py: unknown variant {arg.variant!r}; choose tiny or one of {sorted(PAPER)}")
  if arg.runlocal:
    common.shrink_for_local(c)
  return c
