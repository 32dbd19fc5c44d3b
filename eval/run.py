"""Evaluate a model (a training workdir, a Hugging Face dir, a GGUF file, or a packaged model name)
on a list of tasks; writes report.json, report.md, PNG plots and agent trajectories.

  python -m eval.run --config=configs/eval.py:smollm2 --workdir=reports/smollm2
  python -m eval.run --config=configs/eval.py:workdir --config.model=runs/tiny --workdir=reports/tiny
  python -m eval.report compare reports/a reports/b      # runs side by side
"""

import json
import os
import time

from absl import app, flags, logging
import jax
from ml_collections import config_flags

from eval import data, report, suite
from eval.lm import LM
from input_pipeline import sft
from models import transformer
from training import mesh as mesh_lib, model_source

_CONFIG = config_flags.DEFINE_config_file("config", None, "eval config file", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "where the report goes")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  config, out_dir = _CONFIG.value, _WORKDIR.value
  os.makedirs(out_dir, exist_ok=True)
  for spec in config.tasks:  # fail on a typo before loading anything
    suite.parse(spec)
  data_dir = data.data_dir(config.data_dir)

  # ---------------------------------------------------------------- model
  t0 = time.time()
  mesh = mesh_lib.make_mesh(config.mesh.to_dict())
  model_config, graphdef, params, tokenizer = model_source.load(config.model, mesh=mesh)
  total_params, _ = transformer.count_params(model_config.model)
  source = model_config.get("source")
  name = config.name or os.path.basename(os.path.normpath(config.model))
  lm = LM(graphdef, params, tokenizer, name, mesh=mesh, max_length=config.max_length,
          tokens_per_batch=config.tokens_per_batch, agent_batch_size=config.agent_batch_size,
          template=sft.model_template(model_config, tokenizer))
  model_info = dict(name=name, source=source.path if source else os.path.abspath(config.model),
                    kind=source.kind if source else "workdir", params=total_params,
                    tokenizer=getattr(tokenizer, "path", ""), template=lm.template,
                    dtype=model_config.model.dtype,
                    devices=f"{jax.device_count()} x {jax.devices()[0].device_kind}",
                    load_seconds=round(time.time() - t0, 1))
  print(f"model {name}: {total_params:,} params, loaded in {model_info['load_seconds']} s")

  # ---------------------------------------------------------------- tasks
  # A rerun into the same workdir keeps finished tasks (results.jsonl) and runs only the rest.
  results, done = [], {}
  results_path = os.path.join(out_dir, "results.jsonl")
  if os.path.exists(results_path):
    with open(results_path) as f:
      done = {r["spec"]: r for r in map(json.loads, f) if r.get("model") == name and "spec" in r}
  todo = [spec for spec in config.tasks if spec not in done]
  results.extend(done[spec] for spec in config.tasks if spec in done)
  if done:
    print(f"kept {len(results)} finished task(s) from {results_path}; running {len(todo)}")

  def on_result(result):
    results.append(result)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
    mode = f"/{result['mode']}" if result.get("mode") else ""
    print(f"{result['task']}{mode}: {metrics} ({result['samples']} of {result['total']}, "
          f"{result['seconds']:.0f} s)", flush=True)
    with open(results_path, "a") as f:  # kept if a later task fails
      f.write(json.dumps(dict(result, model=name)) + "\n")

  suite.run(lm, todo, data_dir, limits=config.limits.to_dict(), default_limit=config.limit,
            trajectories_dir=os.path.join(out_dir, "trajectories"), on_result=on_result)

  # ---------------------------------------------------------------- report
  metrics_jsonl = None
  if model_info["kind"] == "workdir":
    metrics_jsonl = os.path.join(config.model, "metrics.jsonl")
  report.write(out_dir, model_info, results, metrics_jsonl=metrics_jsonl, data_dir=data_dir)
  print(f"wrote {out_dir}/report.md ({time.time() - t0:.0f} s in all)")


if __name__ == "__main__":
  logging.set_verbosity(logging.WARNING)
  app.run(main)
