"""input_pipeline/files.py: a failed write leaves the old file (or directory) whole and no temp."""

import os

import pytest

from input_pipeline import files


def test_write_atomically_bytes_and_text_and_creates_folder(tmp_path):
  path = str(tmp_path / "new" / "f.bin")
  files.write_atomically(path, b"\x00\xff")
  assert open(path, "rb").read() == b"\x00\xff"
  files.write_atomically(path, "naïve\n")
  assert open(path, encoding="utf-8").read() == "naïve\n"
  assert os.listdir(tmp_path / "new") == ["f.bin"]


def test_failed_write_keeps_old_file_and_removes_temp(tmp_path):
  path = str(tmp_path / "f.txt")
  files.write_atomically(path, "old")
  with pytest.raises(RuntimeError, match="half"):
    with files.atomic_path(path) as tmp:
      with open(tmp, "w") as f:
        f.write("half written")
      raise RuntimeError("half")
  assert open(path).read() == "old"
  assert os.listdir(tmp_path) == ["f.txt"]


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
  out = str(tmp_path / "export")
  with files.atomic_directory(out) as tmp:
    open(os.path.join(tmp, "a"), "w").close()
  with pytest.raises(ValueError):
    with files.atomic_directory(out) as tmp:
      open(os.path.join(tmp, "b"), "w").close()
      raise ValueError("export failed")
  assert os.listdir(out) == ["a"]
  with files.atomic_directory(out) as tmp:
    open(os.path.join(tmp, "c"), "w").close()
  assert os.listdir(out) == ["c"] and os.listdir(tmp_path) == ["export"]
