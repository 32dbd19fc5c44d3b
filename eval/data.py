"""Eval data files: the data dir (input_pipeline/sources.py's rule: flag, else $FRUGAL_DATA_DIR,
else ../shared/data), JSONL rows read with malformed lines counted, never silently mixed in."""

import json
import os

from input_pipeline import sources


def data_dir(setting=""):
  """sources.resolve_data_dir(setting), or FileNotFoundError saying how to give one: every eval
  task needs its files, so a missing data dir stops here rather than as a missing file later."""
  found = sources.resolve_data_dir(setting)
  if not found:
    raise FileNotFoundError(
        "no eval data dir: pass --data_dir (or set the config's data_dir), set $FRUGAL_DATA_DIR, "
        f"or put the data in {sources.DEFAULT_DATA_DIR}")
  return found


def path(root, relative):
  """root/relative, or FileNotFoundError naming the missing file."""
  full = os.path.join(root, relative)
  if not os.path.exists(full):
    raise FileNotFoundError(f"eval data file {full} does not exist (data dir {root})")
  return full


def read_jsonl(file, required=(), limit=None):
  """(rows, skipped): JSON objects from a .jsonl file; a line that is not a JSON object or lacks a
  `required` key is skipped and counted (the count goes into the task's result)."""
  rows, skipped = [], 0
  with open(file, encoding="utf-8") as f:
    for line in f:
      if limit is not None and len(rows) >= limit:
        break
      if not line.strip():
        continue
      try:
        row = json.loads(line)
      except json.JSONDecodeError:
        skipped += 1
        continue
      if not isinstance(row, dict) or any(k not in row for k in required):
        skipped += 1
        continue
      rows.append(row)
  return rows, skipped
