"""Exports are written beside their destination and renamed into place when complete, so a failed
export leaves no half-written file or directory (and an older export of the same name intact until
the new one is whole)."""

import contextlib
import os
import shutil


@contextlib.contextmanager
def directory(out_dir):
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
