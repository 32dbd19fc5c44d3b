"""Checkpoints of the training state and the data-iterator position (Orbax CheckpointManager).

Promises, tested in tests/test_checkpoint.py:
  - Atomic: a step is written to `<step>.orbax-checkpoint-tmp` and renamed when complete, so a save
    killed mid-way is never seen by `latest_step` or `restore`; leftovers are removed on open.
  - Any mesh: `restore` lays the arrays out with the shardings of `abstract_state`, which may come
    from a different mesh (or device count) than the one that saved them.
  - Checked: the stored tree paths, shapes and dtypes are compared with `abstract_state` before
    reading, and a mismatch is one ValueError that names every differing path.
  - Exact resume: the Grain iterator position is saved with the state (one file per process) and
    restored in place, so the batches after a restore are the ones an uninterrupted run would see.

Every process calls every method (save, restore, wait, close); Orbax coordinates the hosts.
"""

import jax
import orbax.checkpoint as ocp
from etils import epath
import grain.checkpoint as grain_checkpoint

_STATE = "state"
_DATA = "data"


class Checkpointer:
  """Keeps the newest `keep` checkpoints of `{step: {state, data}}` under `directory`."""

  def __init__(self, directory, keep=3, async_save=True):
    if keep < 1:
      raise ValueError(f"keep={keep}: expected at least 1 checkpoint to keep")
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.LatestN(keep),
        enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True,  # drop saves that a crash interrupted
        create=True,
    )
    self.directory = epath.Path(directory).absolute()
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=options,
        item_handlers={
            _STATE: ocp.StandardCheckpointHandler(),
            _DATA: grain_checkpoint.CheckpointHandler(),
        },
    )

  def latest_step(self):
    """Newest finalized step, or None."""
    return self._manager.latest_step()

  def all_steps(self):
    return list(self._manager.all_steps())

  def save(self, step, state, data_iterator=None, force=False):
    """Starts writing `state` (a pytree of jax.Arrays) and the iterator position; returns at once
    when async. The iterator position is read before returning, so the caller may advance it.
    A step that already exists is left alone (returns False)."""
    step = int(step)
    if step in self._manager.all_steps():
      return False
    items = {_STATE: ocp.args.StandardSave(state)}
    if data_iterator is not None:
      items[_DATA] = grain_checkpoint.CheckpointSave(data_iterator)
    return self._manager.save(step, args=ocp.args.Composite(**items), force=force)

  def restore(self, step, abstract_state, data_iterator=None):
    """Returns the state at `step` laid out as `abstract_state` (jax.ShapeDtypeStruct leaves with
    .sharding); sets `data_iterator` to the saved position in place."""
    step = int(step)
    if step not in self._manager.all_steps():
      raise FileNotFoundError(
          f"no finalized checkpoint for step {step} in {self.directory}; "
          f"found steps {sorted(self._manager.all_steps())}")
    check_matches(self._manager.item_metadata(step)[_STATE].tree, abstract_state,
                  where=f"{self.directory}/{step}")
    items = {_STATE: ocp.args.StandardRestore(abstract_state)}
    if data_iterator is not None:
      saved = self._manager.metadata(step).item_handlers or {}
      if _DATA not in saved:
        raise ValueError(
            f"checkpoint {self.directory}/{step} holds no data-iterator position; "
            "restore without data_iterator to start the data from the beginning")
      _check_data_files(self.directory / str(step) / _DATA)
      items[_DATA] = grain_checkpoint.CheckpointRestore(data_iterator)
    restored = self._manager.restore(step, args=ocp.args.Composite(**items))
    return restored[_STATE]

  def wait(self):
    """Blocks until the background save (if any) is finalized."""
    self._manager.wait_until_finished()

  def close(self):
    self._manager.close()


def _check_data_files(data_dir):
  """Grain writes one `process_<i>-of-<n>.json` per process; a different process count cannot
  resume the same data positions."""
  want = f"process_{jax.process_index()}-of-{jax.process_count()}.json"
  if not (data_dir / want).exists():
    found = sorted(p.name for p in data_dir.iterdir() if p.name.startswith("process_"))
    raise ValueError(
        f"{data_dir} has data-iterator positions {found}, not {want}: the checkpoint was written "
        f"by a different number of processes than this run's {jax.process_count()}; restore "
        "without data_iterator to restart the data, or resume with the original process count")


def _path_str(path):
  return jax.tree_util.keystr(path, simple=True, separator="/")


def check_matches(stored_tree, abstract_state, where="checkpoint"):
  """Raises one ValueError listing every path whose shape or dtype differs between the stored
  metadata tree and `abstract_state`, and the paths only one of them has."""
  stored = {_path_str(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(stored_tree)[0]}
  wanted = {_path_str(p): leaf
            for p, leaf in jax.tree_util.tree_flatten_with_path(abstract_state)[0]}
  problems = []
  for path in sorted(stored.keys() & wanted.keys()):
    s, w = stored[path], wanted[path]
    s_shape, w_shape = tuple(getattr(s, "shape", ())), tuple(getattr(w, "shape", ()))
    s_dtype, w_dtype = getattr(s, "dtype", None), getattr(w, "dtype", None)
    if s_shape != w_shape:
      problems.append(f"{path}: checkpoint has shape {s_shape}, the model expects {w_shape}")
    elif s_dtype is not None and w_dtype is not None and s_dtype != w_dtype:
      problems.append(f"{path}: checkpoint has dtype {s_dtype}, the model expects {w_dtype}")
  missing = sorted(wanted.keys() - stored.keys())
  unexpected = sorted(stored.keys() - wanted.keys())
  if missing:
    problems.append(f"missing from the checkpoint: {', '.join(missing)}")
  if unexpected:
    problems.append(f"in the checkpoint but not in the model: {', '.join(unexpected)}")
  if problems:
    raise ValueError(
        f"{where} does not match the state being restored (was the model config changed?): "
        + "; ".join(problems) + ".")
