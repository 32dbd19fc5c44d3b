"""Files and directories written beside their destination and renamed into place when complete, so
a crash or an error leaves no half-written file (and an older version of it intact until the new
one is whole). The one way the repo writes atomically: tokenizer.model, metrics.jsonl on resume,
sweep manifests, and every export.

  with atomic_path("out/model.gguf") as tmp:  # write tmp (any writer); renamed on success
    writer = Writer(tmp)
  write_atomically("WORKDIR/tokenizer.model", model_proto)  # bytes or str
  with atomic_directory("out/hf") as tmp:     # fill the directory tmp; it replaces out/hf
    ...
"""

import contextlib
import os
import shutil


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path next to `path` (its folder is created); renamed over `path` when the
  block succeeds, removed when it raises."""
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    yield tmp
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def write_atomically(path, data):
  """Writes `data` (bytes, or str as UTF-8) to `path`, flushed to disk before the rename."""
  binary = isinstance(data, (bytes, bytearray))
  with atomic_path(path) as tmp:
    with open(tmp, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
  return path


@contextlib.contextmanager
def atomic_directory(out_dir):
  """Yields a fresh temporary directory next to `out_dir`; on success it replaces `out_dir`."""
  tmp = out_dir.rstrip("/") + f".tmp-{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    yield tmp
    if os.path.isdir(out_dir):
      shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
