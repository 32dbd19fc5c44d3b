"""The README's second command is exactly what CI runs (.ci/run), so CI tests what users run."""

import os
import re

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_test_command_is_ci_command():
  with open(os.path.join(REPO, ".ci", "run")) as f:
    ci = [line for line in f.read().splitlines() if line.startswith("python3 -m venv")]
  with open(os.path.join(REPO, "README.md")) as f:
    readme = f.read()
  block = re.search(r"## Two commands.*?```bash\n(.*?)```", readme, re.S).group(1)
  commands = [line for line in block.splitlines() if line.startswith("python3 -m venv")]
  assert len(ci) == 1 and len(commands) == 2
  assert commands[1] == ci[0]
  assert "train.py --config=configs/llama.py:tiny --workdir=runs/tiny" in commands[0]
