"""Facts about the code a run or a benchmark used, recorded beside its figures."""

import json
import os
import subprocess

import jax


def git_commit():
  """HEAD of this repo, with "-dirty" when tracked files differ from it; None without git."""
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    run = lambda *a: subprocess.run(("git", "-C", here) + a, capture_output=True, text=True,
                                    check=True, timeout=10).stdout.strip()
    return run("rev-parse", "HEAD") + ("-dirty" if run("status", "--porcelain", "-uno") else "")
  except (OSError, subprocess.SubprocessError):
    return None


def write(workdir, config, argv, process_count):
  """The run's resolved config (config.json: what model_source.load and resume read) and how it
  was launched (run_info.json: commit, command line, devices)."""
  with open(os.path.join(workdir, "config.json"), "w") as f:
    f.write(config.to_json_best_effort(indent=2))
  with open(os.path.join(workdir, "run_info.json"), "w") as f:
    json.dump(dict(git_commit=git_commit(), argv=argv, devices=jax.device_count(),
                   device_kind=jax.devices()[0].device_kind, processes=process_count), f, indent=2)
