"""Sharded training is a config change: every mesh gives the one-device losses, and params really shard."""

import jax
import numpy as np
import pytest

from configs import llama, palm
from input_pipeline import synthetic
from training import mesh as mesh_lib, state as train_state


def small_config(family=llama, **mesh):
  c = family.get_config("runlocal=True")
  c.model.update(num_heads=4, num_kv_heads=2 if family is llama else 1, vocab_size=256)
  c.update(batch_size=8, seq_len=32)
  c.optimizer.update(warmup_steps=2, learning_rate=1e-2)
  c.mesh.update(data=mesh.get("data", 1), fsdp=mesh.get("fsdp", 1), tensor=mesh.get("tensor", 1))
  return c


def run_losses(config, devices, steps=10):
  mesh = mesh_lib.make_mesh(config.mesh, devices)
  setup = train_state.build(config, mesh)
  state, frozen = setup.init(), setup.bind()
  losses = []
  for batch in synthetic.batches(config.batch_size, config.seq_len, config.model.vocab_size, steps):
    state, metrics = setup.step(state, train_state.to_global(setup.batch_sharding, batch), frozen)
    losses.append(float(metrics["loss"]))
  return np.array(losses), state


@pytest.mark.parametrize("family", [llama, palm], ids=["llama", "palm"])
@pytest.mark.parametrize("mesh", [dict(data=8), dict(fsdp=8), dict(data=2, fsdp=2, tensor=2)],
                         ids=["data8", "fsdp8", "d2f2t2"])
def test_mesh_matches_one_device(family, mesh):
  assert jax.device_count() == 8, "run with XLA_FLAGS=--xla_force_host_platform_device_count=8"
  reference, _ = run_losses(small_config(family), jax.devices()[:1])
  losses, state = run_losses(small_config(family, **mesh), jax.devices())
  assert losses[-1] < losses[0] - 0.05  # it learns (the synthetic tokens repeat per seed)
  np.testing.assert_allclose(losses, reference, rtol=2e-5, atol=2e-5)
  # Weights are really split across devices as the rules say.
  wq = state["params"]["layers"]["attn"]["wq"]
  mu = jax.tree.leaves(state["opt_state"])
  if mesh.get("fsdp", 1) > 1 or mesh.get("tensor", 1) > 1:
    shard = wq.addressable_shards[0].data.shape
    assert np.prod(shard) * mesh.get("fsdp", 1) * mesh.get("tensor", 1) == np.prod(wq.shape)
    assert any(not x.sharding.is_fully_replicated for x in mu), "optimizer state should shard like params"
  else:
    assert wq.sharding.is_fully_replicated


def test_grad_accumulation_is_exact():
  c = small_config()
  reference, _ = run_losses(c, jax.devices()[:1], steps=4)
  c.grad_accum_steps = 4
  accumulated, _ = run_losses(c, jax.devices()[:1], steps=4)
  np.testing.assert_allclose(accumulated, reference, rtol=1e-5, atol=1e-5)


def test_rules_drop_axes_that_do_not_divide():
  c = small_config(palm, tensor=2, data=4)  # multi-query: one kv head cannot split over tensor=2
  mesh = mesh_lib.make_mesh(c.mesh, jax.devices())
  setup = train_state.build(c, mesh)
  wk = setup.param_shardings["layers"]["attn"]["wk"].spec
  wq = setup.param_shardings["layers"]["attn"]["wq"].spec
  assert wk[2] is None and wq[2] == "tensor"
