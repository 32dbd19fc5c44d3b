import os
import signal
import subprocess
import sys
import textwrap

import grain
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from training import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _iterator():
  return grain.MapDataset.range(100).shuffle(seed=0).to_iter_dataset().__iter__()


def _state(mesh):
  w = jnp.arange(8 * 16, dtype=jnp.float32).reshape(8, 16)
  return {
      "step": jnp.int32(7),
      "params": {"w": jax.device_put(w, NamedSharding(mesh, P("a", "b"))),
                 "b": jax.device_put(jnp.ones((16,), jnp.bfloat16), NamedSharding(mesh, P("b")))},
  }


def _abstract(state, sharding_fn):
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding_fn(x)), state)


def test_restore_onto_another_mesh_and_resume_iterator(tmp_path):
  assert jax.device_count() == 8, "tests/conftest.py should force 8 CPU devices"
  mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))
  state = _state(mesh)
  it = _iterator()
  [next(it) for _ in range(5)]
  ckpt = checkpoint.Checkpointer(tmp_path, keep=3, async_save=True)
  assert ckpt.latest_step() is None
  assert ckpt.save(5, state, data_iterator=it)
  after_save = [next(it) for _ in range(4)]  # advancing must not change what was saved
  ckpt.wait()
  assert ckpt.latest_step() == 5
  ckpt.close()

  # A fresh process view: 2 devices, the model axis split the other way round.
  mesh2 = Mesh(np.array(jax.devices()[:2]), ("x",))
  last_axis = lambda x: NamedSharding(mesh2, P(*[None] * (x.ndim - 1), "x") if x.ndim else P())
  abstract = _abstract(state, last_axis)
  it2 = _iterator()
  ckpt2 = checkpoint.Checkpointer(tmp_path)
  restored = ckpt2.restore(ckpt2.latest_step(), abstract, data_iterator=it2)
  ckpt2.close()
  assert [next(it2) for _ in range(4)] == after_save
  for path in (("params", "w"), ("params", "b"), ("step",)):
    got, want = restored, state
    for k in path:
      got, want = got[k], want[k]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
  assert restored["params"]["w"].sharding == NamedSharding(mesh2, P(None, "x"))
  assert restored["params"]["w"].sharding.mesh.devices.size == 2


def test_mismatch_names_path_and_both_shapes(tmp_path):
  mesh = Mesh(np.array(jax.devices()).reshape(4, 2), ("a", "b"))
  state = _state(mesh)
  ckpt = checkpoint.Checkpointer(tmp_path, async_save=False)
  ckpt.save(1, state)
  replicated = lambda x: NamedSharding(mesh, P())
  abstract = _abstract(state, replicated)
  abstract["params"]["w"] = jax.ShapeDtypeStruct((8, 32), jnp.float32, sharding=replicated(None))
  abstract["params"]["extra"] = jax.ShapeDtypeStruct((3,), jnp.float32, sharding=replicated(None))
  del abstract["params"]["b"]
  with pytest.raises(ValueError) as e:
    ckpt.restore(1, abstract)
  msg = str(e.value)
  assert "params/w" in msg and "(8, 16)" in msg and "(8, 32)" in msg
  assert "missing from the checkpoint: params/extra" in msg
  assert "not in the model: params/b" in msg

  dtype_changed = _abstract(state, replicated)
  dtype_changed["params"]["b"] = jax.ShapeDtypeStruct((16,), jnp.float32, sharding=replicated(None))
  with pytest.raises(ValueError, match="params/b: checkpoint has dtype bfloat16"):
    ckpt.restore(1, dtype_changed)
  with pytest.raises(ValueError, match="no data-iterator position"):
    ckpt.restore(1, _abstract(state, replicated), data_iterator=_iterator())
  ckpt.close()


def test_keeps_newest_and_skips_existing_step(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, keep=2, async_save=True)
  for step in (10, 20, 30):
    ckpt.save(step, {"x": jnp.full((4,), step)})
  assert not ckpt.save(30, {"x": jnp.zeros((4,))})  # the final save after a periodic one
  ckpt.wait()
  assert ckpt.all_steps() == [20, 30]
  restored = ckpt.restore(30, {"x": jax.ShapeDtypeStruct((4,), jnp.int32)})
  np.testing.assert_array_equal(restored["x"], np.full((4,), 30))
  ckpt.close()


# Saves step 1, then starts step 2 and is SIGKILLed after every byte of step 2 is written but
# before Orbax renames its tmp directory: the most complete-looking interrupted checkpoint.
_KILLED_SAVE = textwrap.dedent("""
    import asyncio, sys
    import jax, numpy as np
    from orbax.checkpoint._src.path import atomicity
    from training import checkpoint

    original = atomicity.AtomicRenameTemporaryPath.finalize
    async def stall_async(self, *args, **kwargs):
      if self.get().name.startswith("2."):
        print("FINALIZING", flush=True)
        await asyncio.sleep(600)
      return await original(self, *args, **kwargs)
    atomicity.AtomicRenameTemporaryPath.finalize = stall_async

    rng = np.random.default_rng(0)
    state = {f"w{i}": jax.numpy.asarray(rng.standard_normal((512, 1024), np.float32))
             for i in range(8)}  # 16 MiB of incompressible data
    ckpt = checkpoint.Checkpointer(sys.argv[1], async_save=True)
    ckpt.save(1, state)
    ckpt.wait()
    ckpt.save(2, jax.tree.map(lambda x: x + 1, state))
    ckpt.wait()
""")


def test_save_killed_midway_is_never_restored(tmp_path):
  script = tmp_path / "save.py"
  script.write_text(_KILLED_SAVE)
  ckpt_dir = tmp_path / "ckpt"
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="")
  proc = subprocess.Popen([sys.executable, str(script), str(ckpt_dir)], env=env, cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if line.startswith("FINALIZING"):
      proc.send_signal(signal.SIGKILL)
      break
  proc.wait(timeout=60)
  assert lines and lines[-1].startswith("FINALIZING"), "".join(lines[-30:])
  leftovers = sorted(p.name for p in ckpt_dir.iterdir())
  assert "2.orbax-checkpoint-tmp" in leftovers, leftovers  # the interrupted save is on disk

  ckpt = checkpoint.Checkpointer(ckpt_dir)
  assert ckpt.latest_step() == 1
  abstract = {f"w{i}": jax.ShapeDtypeStruct((512, 1024), jnp.float32) for i in range(8)}
  with pytest.raises(FileNotFoundError, match="no finalized checkpoint for step 2"):
    ckpt.restore(2, abstract)
  restored = ckpt.restore(1, abstract)
  expected = np.random.default_rng(0).standard_normal((512, 1024), np.float32)
  np.testing.assert_array_equal(restored["w0"], expected)
  # The leftover was cleaned when the directory was opened, so step 2 can be written again.
  assert not any("tmp" in p.name for p in ckpt_dir.iterdir())
  assert ckpt.save(2, restored)
  ckpt.wait()
  assert ckpt.latest_step() == 2
  ckpt.close()


def test_donating_the_state_right_after_an_async_save(tmp_path):
  # train.py donates the state to the next step while the save is still being written.
  rng = np.random.default_rng(0)
  state = {"w": jnp.asarray(rng.standard_normal((1024, 1024), np.float32))}
  want = np.asarray(state["w"]).copy()
  update = jax.jit(lambda s: jax.tree.map(lambda x: x * 0 + 5, s), donate_argnums=0)
  ckpt = checkpoint.Checkpointer(tmp_path, async_save=True)
  ckpt.save(1, state)
  jax.block_until_ready(update(state))
  ckpt.wait()
  restored = ckpt.restore(1, {"w": jax.ShapeDtypeStruct((1024, 1024), jnp.float32)})
  np.testing.assert_array_equal(restored["w"], want)
  ckpt.close()


def test_data_position_from_another_process_count_is_refused(tmp_path):
  ckpt = checkpoint.Checkpointer(tmp_path, async_save=False)
  ckpt.save(3, {"x": jnp.zeros((2,))}, data_iterator=_iterator())
  data_dir = tmp_path / "3" / "data"
  (data_dir / "process_0-of-1.json").rename(data_dir / "process_0-of-2.json")  # as if 2 hosts
  with pytest.raises(ValueError, match=r"\['process_0-of-2.json'\], not process_0-of-1.json"):
    ckpt.restore(3, {"x": jax.ShapeDtypeStruct((2,), jnp.float32)}, data_iterator=_iterator())
  ckpt.close()
