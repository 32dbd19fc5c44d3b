"""Hyper-parameter sweeps declared next to the config they sweep (big_vision's `get_hyper` style).

A config file may define `get_sweep(arg)` returning a list of override sets, e.g.

  from training import sweep as hyper

  def get_sweep(arg=None):
    return hyper.product(hyper.sweep("optimizer.learning_rate", [1e-3, 3e-3]),
                         hyper.sweep("model.num_layers", [2, 4]))

and one command launches every member, each in its own workdir:

  python -m training.sweep --config=configs/llama.py:tiny --sweepdir=runs/lr \\
      [--launcher=local|print|slurm] [--train_cmd="python train.py"] [--config.total_steps=500]

Every member gets workdir SWEEPDIR/<name from its overrides> (e.g. `learning_rate=0.001,num_layers=2`)
and the command `TRAIN_CMD --config=CONFIG --workdir=... --config.k=v ...`; trailing --config.k=v
flags apply to every member. SWEEPDIR/manifest.json records each member's name, overrides, workdir,
command and status. Launchers: `local` runs members one after another (a failure does not stop
the rest; members already `done` with the same command are skipped on a rerun; output goes to
WORKDIR/train.log), `print` prints one command per member, `slurm` writes SWEEPDIR/sweep.sbatch,
a job array whose index picks the member, and prints it.
"""

import argparse
import datetime
import itertools
import json
import os
import shlex
import subprocess
import sys
import time

from training import config as config_lib
from input_pipeline import files

MANIFEST = "manifest.json"


# --- declaring sweeps ---------------------------------------------------------------------------

def sweep(key, values):
  """One axis: [{key: v} for v in values]."""
  return [{key: v} for v in values]


def product(*axes):
  """Every combination of the axes' override sets (the first axis varies slowest)."""
  return [_merge(combo) for combo in itertools.product(*axes)]


def zipit(*axes):
  """The i-th override sets of equally long axes, merged."""
  lengths = {len(a) for a in axes}
  if len(lengths) > 1:
    raise ValueError(f"zipit: axes have different lengths {sorted(lengths)}")
  return [_merge(combo) for combo in zip(*axes)]


def _merge(dicts):
  out = {}
  for d in dicts:
    clash = out.keys() & d.keys()
    if clash:
      raise ValueError(f"a sweep sets {sorted(clash)} twice in one member")
    out.update(d)
  return out


# --- loading ------------------------------------------------------------------------------------

def load_sweep(config_path):
  """'configs/x.py[:arg]' -> list of override dicts (keys without a leading 'config.'), checked
  against the config's fields when the file also defines get_config."""
  path, *arg = config_path.split(":", 1)  # as ml_collections.config_flags does
  module = config_lib.load_module(path)
  if not hasattr(module, "get_sweep"):
    raise ValueError(f"{path} defines no get_sweep(arg); see training/sweep.py")
  members = module.get_sweep(*arg)
  if not isinstance(members, (list, tuple)) or not members:
    raise ValueError(f"{path}:get_sweep returned {members!r}: expected a non-empty list of dicts")
  config = module.get_config(*arg) if hasattr(module, "get_config") else None
  out = []
  for i, overrides in enumerate(members):
    if not isinstance(overrides, dict):
      raise ValueError(f"sweep member {i} is {overrides!r}: expected a dict of overrides")
    overrides = {k.removeprefix("config."): v for k, v in overrides.items()}
    if config is not None:
      for key in overrides:
        problem = config_lib.unknown_field(config, key)
        if problem:
          raise ValueError(f"sweep member {i}: override {key!r} names no config field ({problem})")
    out.append(overrides)
  return out


# --- planning -----------------------------------------------------------------------------------

def _value_text(value):
  return value if isinstance(value, str) else repr(value)


def _name_text(value):
  text = f"{value:g}" if isinstance(value, float) else str(value)
  return "".join(c if c.isalnum() or c in "._-+=" else "_" for c in text)


def member_names(members):
  """Readable, unique directory names: `key=value,...` with the shortest unambiguous key."""
  keys = list(dict.fromkeys(k for m in members for k in m))
  leaves = [k.rsplit(".", 1)[-1] for k in keys]
  short = {k: (leaf if leaves.count(leaf) == 1 else k) for k, leaf in zip(keys, leaves)}
  names, seen = [], {}
  for overrides in members:
    name = ",".join(f"{short[k]}={_name_text(v)}" for k, v in overrides.items()) or "base"
    seen[name] = seen.get(name, 0) + 1
    names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
  return names


def plan(config_path, sweepdir, members, extra_args=(), train_cmd="python train.py"):
  """Manifest entries (name, overrides, workdir, command, status) for each member."""
  extra_keys = {a.split("=", 1)[0].removeprefix("--config.") for a in extra_args}
  entries = []
  for name, overrides in zip(member_names(members), members):
    clash = extra_keys & overrides.keys()
    if clash:
      raise ValueError(f"--config.{sorted(clash)[0]} is given on the command line and also "
                       f"swept by member {name!r}; drop one")
    workdir = os.path.join(sweepdir, name)
    argv = shlex.split(train_cmd) + [f"--config={config_path}", f"--workdir={workdir}"]
    argv += list(extra_args) + [f"--config.{k}={_value_text(v)}" for k, v in overrides.items()]
    entries.append(dict(name=name, overrides=overrides, workdir=workdir,
                        command=shlex.join(argv), status="planned", returncode=None))
  return entries


def write_manifest(sweepdir, manifest):
  files.write_atomically(os.path.join(sweepdir, MANIFEST),
                         json.dumps(manifest, indent=2, default=repr) + "\n")


def read_manifest(sweepdir):
  with open(os.path.join(sweepdir, MANIFEST)) as f:
    return json.load(f)


# --- launchers ----------------------------------------------------------------------------------

def run_local(sweepdir, manifest):
  """Runs the members one after another; returns the number that failed."""
  previous = {}
  if os.path.exists(os.path.join(sweepdir, MANIFEST)):
    previous = {m["name"]: m for m in read_manifest(sweepdir)["members"]}
  members = manifest["members"]
  for i, member in enumerate(members):
    before = previous.get(member["name"], {})
    if before.get("status") == "done" and before.get("command") == member["command"]:
      member.update(status="done", returncode=0, seconds=before.get("seconds"))
      print(f"[{i + 1}/{len(members)}] {member['name']}: done earlier, skipped", flush=True)
  write_manifest(sweepdir, manifest)
  for i, member in enumerate(members):
    if member["status"] == "done":
      continue
    os.makedirs(member["workdir"], exist_ok=True)
    log_path = os.path.join(member["workdir"], "train.log")
    print(f"[{i + 1}/{len(members)}] {member['name']}: running, log {log_path}", flush=True)
    member.update(status="running", log=log_path)
    write_manifest(sweepdir, manifest)
    argv = shlex.split(member["command"])
    if argv[0] == "python":  # the interpreter running the sweep, virtual environment included
      argv[0] = sys.executable
    start = time.time()
    with open(log_path, "w") as log:
      try:
        returncode = subprocess.call(argv, stdout=log, stderr=subprocess.STDOUT)
      except OSError as e:  # e.g. the train command does not exist
        log.write(f"could not start {argv[0]!r}: {e}\n")
        returncode = 127
    member.update(status="done" if returncode == 0 else "failed", returncode=returncode,
                  seconds=round(time.time() - start, 1))
    write_manifest(sweepdir, manifest)
    print(f"[{i + 1}/{len(members)}] {member['name']}: {member['status']} "
          f"(rc={returncode}, {member['seconds']}s)", flush=True)
  return sum(m["status"] == "failed" for m in members)


def sbatch_script(sweepdir, members, sbatch_args="", workdir=None):
  """A SLURM job array: task i runs member i."""
  name = os.path.basename(os.path.abspath(sweepdir))
  lines = ["#!/bin/bash", f"#SBATCH --job-name=sweep-{name}",
           f"#SBATCH --array=0-{len(members) - 1}",
           f"#SBATCH --output={os.path.join(os.path.abspath(sweepdir), 'slurm-%A_%a.out')}"]
  lines += [f"#SBATCH {a}" for a in shlex.split(sbatch_args)]
  lines += ["set -euo pipefail", f"cd {shlex.quote(workdir or os.getcwd())}",
            'case "$SLURM_ARRAY_TASK_ID" in']
  for i, member in enumerate(members):
    lines += [f"  {i})  # {member['name']}", f"    {member['command']} ;;"]
  lines += ['  *) echo "no sweep member $SLURM_ARRAY_TASK_ID" >&2; exit 1 ;;', "esac", ""]
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      epilog="Trailing --config.key=value flags are passed to every member.")
  parser.add_argument("--config", required=True, help="configs/x.py[:arg] defining get_sweep")
  parser.add_argument("--sweepdir", required=True, help="parent of the members' workdirs")
  parser.add_argument("--launcher", choices=("local", "print", "slurm"), default="local")
  parser.add_argument("--train_cmd", default="python train.py",
                      help="command that trains one member; a leading 'python' runs as this "
                           "interpreter under --launcher=local")
  parser.add_argument("--sbatch", default="", help="extra #SBATCH options, e.g. '--gres=gpu:8'")
  args, extra = parser.parse_known_args(argv)
  bad = [a for a in extra if not (a.startswith("--config.") and "=" in a)]
  if bad:
    parser.error(f"unrecognised arguments {bad}: only --config.key=value overrides may follow")

  members = plan(args.config, args.sweepdir, load_sweep(args.config), extra, args.train_cmd)
  os.makedirs(args.sweepdir, exist_ok=True)
  manifest = dict(config=args.config, launcher=args.launcher, train_cmd=args.train_cmd,
                  extra_args=extra, created=datetime.datetime.now().isoformat(timespec="seconds"),
                  members=members)
  if args.launcher == "local":
    failed = run_local(args.sweepdir, manifest)
    print(f"sweep {args.sweepdir}: {len(members) - failed}/{len(members)} members succeeded")
    return 1 if failed else 0
  if args.launcher == "print":
    for member in members:
      member["status"] = "printed"
      print(member["command"])
  else:
    path = os.path.join(args.sweepdir, "sweep.sbatch")
    script = sbatch_script(args.sweepdir, members, args.sbatch)
    with open(path, "w") as f:
      f.write(script)
    for i, member in enumerate(members):
      member.update(status="written", array_index=i)
    print(script)
    print(f"# submit with: sbatch {shlex.quote(path)}")
  write_manifest(args.sweepdir, manifest)
  return 0


if __name__ == "__main__":
  sys.exit(main())
