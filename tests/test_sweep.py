import json
import os
import shlex
import subprocess
import sys
import textwrap

import pytest

from training import sweep

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_CONFIG = textwrap.dedent("""
    import ml_collections
    from training import sweep as hyper

    def get_config(arg=None):
      c = ml_collections.ConfigDict()
      c.total_steps = 10
      c.model = ml_collections.ConfigDict(dict(num_layers=2, dropout=0.0))
      c.optimizer = ml_collections.ConfigDict(dict(learning_rate=1e-3))
      return c

    def get_sweep(arg=None):
      if arg == "typo":
        return [{"optimizer.learning_rat": 1.0}]
      if arg == "dropout":
        return hyper.zipit(hyper.sweep("model.dropout", [0.0, 0.1]),
                           hyper.sweep("config.optimizer.learning_rate", [3e-4, 1e-3]))
      return hyper.product(hyper.sweep("optimizer.learning_rate", [1e-3, 3e-4]),
                           hyper.sweep("model.num_layers", [2, 4]))
""")

# Stands in for train.py: records its arguments, fails for num_layers=4.
_FAKE_TRAIN = textwrap.dedent("""
    import json, os, sys
    args = dict(a[2:].split("=", 1) for a in sys.argv[1:])
    os.makedirs(args["workdir"], exist_ok=True)
    json.dump(sys.argv[1:], open(os.path.join(args["workdir"], "args.json"), "w"))
    print("training", args["workdir"])
    sys.exit(3 if args.get("config.model.num_layers") == "4" else 0)
""")


@pytest.fixture
def config_path(tmp_path):
  path = tmp_path / "cfg.py"
  path.write_text(_CONFIG)
  return str(path)


def test_members_and_names(config_path):
  members = sweep.load_sweep(config_path)
  assert members == [
      {"optimizer.learning_rate": 1e-3, "model.num_layers": 2},
      {"optimizer.learning_rate": 1e-3, "model.num_layers": 4},
      {"optimizer.learning_rate": 3e-4, "model.num_layers": 2},
      {"optimizer.learning_rate": 3e-4, "model.num_layers": 4},
  ]
  assert sweep.member_names(members) == [
      "learning_rate=0.001,num_layers=2", "learning_rate=0.001,num_layers=4",
      "learning_rate=0.0003,num_layers=2", "learning_rate=0.0003,num_layers=4"]
  # Leaf names that collide keep the full key; repeated names get a suffix; {} is "base".
  assert sweep.member_names([{"a.size": 1, "b.size": "x/y"}, {}, {}]) == [
      "a.size=1,b.size=x_y", "base", "base_2"]
  assert sweep.load_sweep(config_path + ":dropout") == [
      {"model.dropout": 0.0, "optimizer.learning_rate": 3e-4},
      {"model.dropout": 0.1, "optimizer.learning_rate": 1e-3}]
  with pytest.raises(ValueError, match="'optimizer.learning_rat' names no config field"):
    sweep.load_sweep(config_path + ":typo")
  with pytest.raises(ValueError, match="different lengths"):
    sweep.zipit(sweep.sweep("a", [1, 2]), sweep.sweep("b", [1]))


def test_print_launcher_and_manifest(config_path, tmp_path, capsys):
  sweepdir = str(tmp_path / "sw")
  assert sweep.main([f"--config={config_path}", f"--sweepdir={sweepdir}", "--launcher=print",
                     "--config.total_steps=5"]) == 0
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 4
  assert shlex.split(lines[1]) == [
      "python", "train.py", f"--config={config_path}",
      f"--workdir={sweepdir}/learning_rate=0.001,num_layers=4", "--config.total_steps=5",
      "--config.optimizer.learning_rate=0.001", "--config.model.num_layers=4"]
  manifest = sweep.read_manifest(sweepdir)
  assert manifest["config"] == config_path and manifest["launcher"] == "print"
  first = manifest["members"][0]
  assert first["name"] == "learning_rate=0.001,num_layers=2"
  assert first["overrides"] == {"optimizer.learning_rate": 0.001, "model.num_layers": 2}
  assert first["workdir"] == os.path.join(sweepdir, first["name"])
  assert first["command"] == lines[0] and first["status"] == "printed"
  with pytest.raises(ValueError, match="also swept"):
    sweep.main([f"--config={config_path}", f"--sweepdir={sweepdir}", "--launcher=print",
                "--config.model.num_layers=8"])


def test_slurm_launcher_writes_job_array(config_path, tmp_path, capsys):
  sweepdir = str(tmp_path / "sw")
  sweep.main([f"--config={config_path}", f"--sweepdir={sweepdir}", "--launcher=slurm",
              "--sbatch=--gres=gpu:8 --time=02:00:00", "--train_cmd=srun python train.py"])
  script = open(os.path.join(sweepdir, "sweep.sbatch")).read()
  assert script in capsys.readouterr().out
  assert "#SBATCH --array=0-3\n" in script and "#SBATCH --gres=gpu:8\n" in script
  assert "#SBATCH --time=02:00:00\n" in script
  members = sweep.read_manifest(sweepdir)["members"]
  for i, member in enumerate(members):
    assert f"  {i})  # {member['name']}\n    {member['command']} ;;" in script
    assert member["array_index"] == i and member["command"].startswith("srun python train.py")
  # The script is valid bash and dispatches on the array index.
  fake = tmp_path / "bin"
  fake.mkdir()
  (fake / "srun").write_text('#!/bin/bash\necho "$@"\n')
  os.chmod(fake / "srun", 0o755)
  out = subprocess.run(["bash", os.path.join(sweepdir, "sweep.sbatch")], capture_output=True,
                       text=True, env=dict(os.environ, SLURM_ARRAY_TASK_ID="2",
                                           PATH=f"{fake}:{os.environ['PATH']}"))
  assert out.returncode == 0, out.stderr
  assert shlex.split(out.stdout) == shlex.split(members[2]["command"])[1:]


def test_local_launcher_runs_all_and_records_failures(config_path, tmp_path, capsys):
  sweepdir = str(tmp_path / "sw")
  fake_train = tmp_path / "fake_train.py"
  fake_train.write_text(_FAKE_TRAIN)
  argv = [f"--config={config_path}", f"--sweepdir={sweepdir}", "--launcher=local",
          f"--train_cmd=python {fake_train}", "--config.total_steps=7"]
  assert sweep.main(argv) == 1  # two members fail
  members = sweep.read_manifest(sweepdir)["members"]
  assert [m["status"] for m in members] == ["done", "failed", "done", "failed"]
  assert [m["returncode"] for m in members] == [0, 3, 0, 3]
  for m in members:
    args = json.load(open(os.path.join(m["workdir"], "args.json")))
    assert args == shlex.split(m["command"])[2:]
    assert "--config.total_steps=7" in args
    assert "training " + m["workdir"] in open(m["log"]).read()
  assert "2/4 members succeeded" in capsys.readouterr().out

  # A rerun skips the members that finished and retries the failed ones.
  os.remove(os.path.join(members[0]["workdir"], "args.json"))
  sweep.main(argv)
  assert not os.path.exists(os.path.join(members[0]["workdir"], "args.json"))
  assert "done earlier, skipped" in capsys.readouterr().out


def test_module_entry_point(config_path, tmp_path):
  out = subprocess.run(
      [sys.executable, "-m", "training.sweep", f"--config={config_path}:dropout",
       f"--sweepdir={tmp_path / 'sw'}", "--launcher=print"],
      cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
  assert out.returncode == 0, out.stderr
  assert len(out.stdout.strip().splitlines()) == 2
  assert "dropout=0.1,learning_rate=0.001" in out.stdout
  bad = subprocess.run([sys.executable, "-m", "training.sweep", f"--config={config_path}",
                        f"--sweepdir={tmp_path / 'sw'}", "--bogus=1"],
                       cwd=REPO, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=REPO))
  assert bad.returncode == 2 and "only --config.key=value overrides" in bad.stderr
