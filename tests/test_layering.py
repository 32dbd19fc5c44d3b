"""The import layering of .importlinter (run by .ci/run): it holds, and it catches a back-import."""

import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("bench", "export", "configs", "eval", "training", "models", "input_pipeline")
LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), "lint-imports")


def _lint_imports(cwd):
  return subprocess.run([LINT_IMPORTS, "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_layers_hold():
  run = _lint_imports(REPO)
  assert run.returncode == 0, run.stdout + run.stderr
  assert "0 broken" in run.stdout


def test_a_back_import_breaks_the_contract(tmp_path):
  """models importing configs (models/llama_import.py did) is reported, naming the import."""
  for package in PACKAGES:
    shutil.copytree(os.path.join(REPO, package), tmp_path / package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.jsonl"))
  shutil.copy(os.path.join(REPO, ".importlinter"), tmp_path)
  with open(tmp_path / "models" / "config.py", "a") as f:
    f.write("\nfrom configs import common  # a back-import\n")
  with open(tmp_path / "training" / "loop.py", "a") as f:
    f.write("\nimport train  # an entry point\n")
  run = _lint_imports(tmp_path)
  assert run.returncode != 0
  assert "models.config -> configs.common" in run.stdout
  assert "training.loop -> train" in run.stdout


def test_importing_train_starts_no_backend():
  """train.py calls jax.distributed.initialize, which fails once any import has started the XLA
  backend (bm25s, imported through the eval suite, runs a jax computation when imported)."""
  probe = (
      "import sys\n"
      "from jax._src import xla_bridge\n"
      "def refuse(*args, **kwargs):\n"
      "  import traceback; traceback.print_stack(); sys.exit(3)\n"
      "xla_bridge.backends = refuse\n"
      "import train\n")
  run = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True,
                       timeout=300, env=dict(os.environ, PYTHONPATH=REPO))
  assert run.returncode == 0, run.stderr[-3000:]
