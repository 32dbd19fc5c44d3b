r"""Benchmark evaluation during training: the benchmark model built once per run vs rebuilt at every
evaluation (how train.py did it before eval/during_training.py), side by side in one process.

  python bench/eval_build.py --model=runs/tiny                  # the main job's model; arc_easy + hellaswag
  python bench/eval_build.py --model=smollm2-135m-instruct --tasks=arc_easy --limit=4 --evaluations=2

Each mode runs `--evaluations` evaluations of config.evals-style tasks on `--model` (anything
training/model_source.load reads) at its config's seq_len, its weights nudged between
evaluations as training would change them: "rebuilt" makes a new eval/lm.LM
each time (so every scoring shape is traced and compiled again), "built once" makes one and
gives it the new weights (LM.set_params). Prints seconds per evaluation and the time saved per
evaluation after the first, and appends them with device, commit and command to
bench/results.jsonl (or --out). Needs the eval data dir (--data_dir, $FRUGAL_DATA_DIR or
../shared/data).
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags, logging

_MODEL = flags.DEFINE_string("model", "runs/tiny", "The model: a workdir, HF dir, .gguf or packaged name.")
_MAX_LENGTH = flags.DEFINE_integer("max_length", 0, "Scoring length (0: the model's config.seq_len).")
_TASKS = flags.DEFINE_list("tasks", ["arc_easy", "hellaswag"], "Benchmark task specs (as config.evals.tasks).")
_LIMIT = flags.DEFINE_integer("limit", 20, "Examples per task.")
_EVALUATIONS = flags.DEFINE_integer("evaluations", 3, "Evaluations per mode.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "Eval data dir ('' -> $FRUGAL_DATA_DIR or ../shared/data).")
_OUT = flags.DEFINE_string("out", "bench/results.jsonl", "Where results are appended.")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  import jax
  import numpy as np

  from eval import data as eval_data, suite
  from eval.lm import LM
  from models import partitioning
  from training import mesh as mesh_lib, model_source
  from training.run_info import git_commit

  suite.check_specs(_TASKS.value, "--tasks")
  data_dir = eval_data.data_dir(_DATA_DIR.value)
  mesh = mesh_lib.make_mesh(dict(data=-1, fsdp=1, tensor=1))
  config, graphdef, params, tokenizer = model_source.load(_MODEL.value, mesh=mesh)
  rules = tuple(config.logical_axis_rules)
  max_length = _MAX_LENGTH.value or config.seq_len

  def weights(i):  # a different model at every evaluation, as after more training steps
    return jax.tree.map(lambda x: x * (1.0 + 1e-3 * i), params)

  def evaluate(lm):
    t0 = time.time()
    results = suite.run(lm, _TASKS.value, data_dir, default_limit=_LIMIT.value)
    return time.time() - t0, {f"{r['spec']}/{k}": v for r in results for k, v in r["metrics"].items()}

  seconds = dict(rebuilt=[], built_once=[])
  metrics = dict(rebuilt=[], built_once=[])
  for i in range(_EVALUATIONS.value):  # before: a new LM, default rules, at every evaluation
    t0 = time.time()
    lm = LM(graphdef, weights(i), tokenizer, "bench", mesh=mesh, max_length=max_length,
            rules=partitioning.DEFAULT_RULES)
    _, m = evaluate(lm)
    seconds["rebuilt"].append(time.time() - t0)
    metrics["rebuilt"].append(m)
  lm = None
  for i in range(_EVALUATIONS.value):  # now: one LM with the run's rules, new weights each time
    t0 = time.time()
    if lm is None:
      lm = LM(graphdef, weights(i), tokenizer, "bench", mesh=mesh, max_length=max_length, rules=rules)
    else:
      lm.set_params(weights(i))
    _, m = evaluate(lm)
    seconds["built_once"].append(time.time() - t0)
    metrics["built_once"].append(m)
  if metrics["rebuilt"] != metrics["built_once"]:
    raise AssertionError(f"the two modes scored differently: {metrics}")
  later = {k: float(np.mean(v[1:])) if len(v) > 1 else None for k, v in seconds.items()}
  saved = None if later["rebuilt"] is None else later["rebuilt"] - later["built_once"]
  record = dict(bench="eval_build", model=_MODEL.value, max_length=max_length, tasks=_TASKS.value, limit=_LIMIT.value,
                evaluations=_EVALUATIONS.value, seconds=seconds, later_mean_seconds=later,
                saved_seconds_per_evaluation=saved, metrics_equal=True,
                device_kind=jax.devices()[0].device_kind, devices=jax.device_count(),
                commit=git_commit(), argv=sys.argv)
  for mode, values in seconds.items():
    print(f"{mode:>10}: " + ", ".join(f"{s:.2f}s" for s in values) + " per evaluation")
  if saved is not None:
    print(f"saved per evaluation after the first: {saved:.2f}s "
          f"({later['rebuilt']:.2f}s -> {later['built_once']:.2f}s); scores identical")
  with open(_OUT.value, "a") as f:
    f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
  app.run(main)
