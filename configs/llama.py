"""LLaMA-style decoders: pre-norm RMSNorm, rotary, SwiGLU, grouped-query attention, no biases.

Variants (`configs/llama.py:<variant>`):
  tiny         the default main job: 3.3M params (4 layers, 192 wide, 4096 BPE vocab), 550 steps of
               16 x 256 tokens; 12.5 minutes end to end on a 2-core CPU (3.2k tokens/s).
               python train.py --config=configs/llama.py:tiny --workdir=runs/tiny
               Expected: held-out bits-per-byte 1.84 at step 550 (2.34 at step 110).
  shakespeare  the nanoGPT CPU comparison on tinyshakespeare (first 90% train, last 10% held out):
               python train.py --config=configs/llama.py:shakespeare --workdir=runs/shakespeare
               Expected: held-out bpb ~2.34 (nanoGPT's CPU recipe: 2.71) in under 3 minutes end to end.
  gpt2s        GPT-2-small shape (12 layers, 768 wide, 12 heads, sequence 1024) for bench/train_bench.py.
  7b 13b 33b 65b  the LLaMA paper's dimensions (Touvron et al. 2023, Table 2), 32,000 vocab,
               2048 context, bf16 compute, FSDP; plan them on a CPU with
               python train.py --config=configs/llama.py:7b --workdir=runs/plan7b --dry_run \\
                   --config.cost.device_kind=A100-80GB --config.cost.device_count=2048
               Expected: 6.74B / 13.02B / 32.53B / 65.29B parameters.
Other args: `runlocal=True` shrinks any variant to a seconds-long smoke run.
"""

from configs import common
from models.config import model_config
from training.config import base_config

# name: (layers, embed, heads, kv heads, mlp hidden, vocab)
PAPER = {
    "7b": (32, 4096, 32, 32, 11008),
    "13b": (40, 5120, 40, 40, 13824),
    "33b": (60, 6656, 52, 52, 17920),
    "65b": (80, 8192, 64, 64, 22016),
}


def get_config(arg="tiny"):
  arg = common.parse_arg(arg, variant="tiny", runlocal=False)
  c = base_config()
  c.model = model_config(block="llama")
  if arg.variant == "tiny":
    c.model.update(vocab_size=4096, num_layers=4, embed_dim=192, num_heads=6, num_kv_heads=6,
                   head_dim=32, mlp_dim=512)
    c.update(total_steps=550, batch_size=16, seq_len=256, eval_every=110, checkpoint_every=110,
             log_every=10)
    c.optimizer.update(learning_rate=3e-3, warmup_steps=50)
  elif arg.variant == "shakespeare":
    c.model.update(vocab_size=1024, num_layers=4, embed_dim=128, num_heads=4, num_kv_heads=4,
                   head_dim=32, mlp_dim=384)
    c.data.path = ("pretrain_text/tinyshakespeare/input.txt",)
    c.data.dedupe = False
    c.update(total_steps=600, batch_size=16, seq_len=128, eval_every=100, checkpoint_every=300)
    c.optimizer.update(learning_rate=3e-3, warmup_steps=50, weight_decay=0.1)
  elif arg.variant == "gpt2s":
    c.model.update(vocab_size=32000, num_layers=12, embed_dim=768, num_heads=12, num_kv_heads=12,
                   head_dim=64, mlp_dim=2048)
    c.update(batch_size=8, seq_len=1024)
  elif arg.variant in PAPER:
    layers, embed, heads, kv_heads, mlp = PAPER[arg.variant]
    c.model.update(vocab_size=32000, num_layers=layers, embed_dim=embed, num_heads=heads,
                   num_kv_heads=kv_heads, head_dim=embed // heads, mlp_dim=mlp, dtype="bfloat16",
                   remat="save_dots", norm_eps=1e-5)
    # The paper's recipe: 4M-token batches of 2048 tokens, AdamW(0.9, 0.95), wd 0.1, clip 1.0,
    # 2000 warmup steps, cosine to 10% of the peak; 1.0T tokens (7B, 13B), 1.4T (33B, 65B).
    tokens = 1.0e12 if arg.variant in ("7b", "13b") else 1.4e12
    c.update(batch_size=2048, seq_len=2048, total_steps=int(tokens // (2048 * 2048)))
    c.optimizer.update(learning_rate=3e-4 if arg.variant in ("7b", "13b") else 1.5e-4,
                       warmup_steps=2000)
    c.mesh.update(data=1, fsdp=-1, tensor=1)
  else:
    raise ValueError(f"configs/llama.py: unknown variant {arg.variant!r}; "
                     f"choose tiny, shakespeare, gpt2s or one of {sorted(PAPER)}")
  if arg.runlocal:
    common.shrink_for_local(c)
  return c


def get_sweep(arg="tiny"):
  """Learning rate x width for the CPU presets (6 members):
  python -m training.sweep --config=configs/llama.py:tiny --sweepdir=runs/sweep_lr_width
  """
  del arg
  from training.sweep import product, sweep
  return product(sweep("optimizer.learning_rate", [1e-3, 3e-3, 1e-2]), sweep("model.embed_dim", [128, 192]))
