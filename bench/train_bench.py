r"""Training throughput and MFU of the update step alone (synthetic data, no input pipeline).

  python bench/train_bench.py                                  # tiny (default) and gpt2s presets
  python bench/train_bench.py --presets=configs/llama.py:gpt2s --batch_size=1 --steps=3
  python bench/train_bench.py --attention=einsum               # compare attention implementations
  python bench/train_bench.py --presets=configs/llama.py:runlocal=True --steps=2 --out=/tmp/r.jsonl  # seconds

Prints one line per preset and appends the figures, device, commit and command to
bench/results.jsonl (or --out).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags

_PRESETS = flags.DEFINE_list("presets", ["configs/llama.py:tiny", "configs/llama.py:gpt2s"], "Configs to time.")
_STEPS = flags.DEFINE_integer("steps", 10, "Timed steps (after 2 warm-up steps).")
_BATCH = flags.DEFINE_integer("batch_size", 0, "Override the preset's global batch (0: keep).")
_ATTENTION = flags.DEFINE_string("attention", "", "Override model.attention (dot_product | einsum).")
_DTYPE = flags.DEFINE_string("dtype", "", "Override model.dtype (float32 | bfloat16).")
_REMAT = flags.DEFINE_string("remat", "", "Override model.remat (none | full | save_dots).")
_OUT = flags.DEFINE_string("out", "bench/results.jsonl", "Where results are appended.")


def main(argv):
  del argv
  import jax
  from models import transformer
  from input_pipeline import synthetic
  from training import config as config_lib, cost, mesh as mesh_lib, state as train_state
  from training.run_info import git_commit

  for preset in _PRESETS.value:
    config = config_lib.load_config(preset)
    if _BATCH.value:
      config.batch_size = _BATCH.value
    for field, value in (("attention", _ATTENTION.value), ("dtype", _DTYPE.value), ("remat", _REMAT.value)):
      if value:
        config.model[field] = value
    config.mesh.update(data=-1, fsdp=1, tensor=1)
    config.batch_size = max(config.batch_size // jax.device_count(), 1) * jax.device_count()
    mesh = mesh_lib.make_mesh(config.mesh)
    setup = train_state.build(config, mesh)
    state, frozen = setup.init(), setup.bind()
    m = config.model
    _, matmul_params = transformer.count_params(m)
    flops_per_token = cost.flops_per_token(matmul_params, m.num_layers, m.num_heads, m.head_dim, config.seq_len)
    batches = [train_state.to_global(setup.batch_sharding, b)
               for b in synthetic.batches(config.batch_size, config.seq_len, m.vocab_size, 2)]
    for i in range(2):
      state, metrics = setup.step(state, batches[i % 2], frozen)
    jax.block_until_ready(metrics)
    t0 = time.perf_counter()
    for i in range(_STEPS.value):
      state, metrics = setup.step(state, batches[i % 2], frozen)
    jax.block_until_ready(metrics)
    seconds = (time.perf_counter() - t0) / _STEPS.value
    tokens_per_second = config.batch_size * config.seq_len / seconds
    kind = jax.devices()[0].device_kind
    peak = cost.peak_flops(kind, m.dtype)
    mfu = cost.mfu(tokens_per_second, flops_per_token, jax.device_count(), peak)
    result = dict(preset=preset, device_kind=kind, devices=jax.device_count(), batch_size=config.batch_size,
                  seq_len=config.seq_len, dtype=m.dtype, attention=m.attention, remat=m.remat,
                  step_seconds=seconds, tokens_per_second=tokens_per_second,
                  model_tflops_per_second=tokens_per_second * flops_per_token / 1e12, mfu=mfu,
                  compile_seconds=setup.compile_seconds, commit=git_commit(), command=" ".join(sys.argv))
    mfu_text = f"{100 * mfu:.1f}%" if mfu is not None else f"n/a (peak unknown for {kind!r})"
    print(f"{preset:28s} {kind} x{jax.device_count()}  batch {config.batch_size}x{config.seq_len} "
          f"{m.dtype} {m.attention}: {seconds * 1e3:.1f} ms/step, {tokens_per_second:,.0f} tokens/s, "
          f"{result['model_tflops_per_second'] * 1e3:.1f} GFLOP/s, MFU {mfu_text}")
    with open(_OUT.value, "a") as f:
      f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
  app.run(main)
