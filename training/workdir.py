"""A training workdir -> (config, graphdef, params, tokenizer): what evaluation, decoding,
fine-tuning and export start from.

    config, graphdef, params, tokenizer = workdir.load("runs/tiny")
    Sampler(graphdef, params, tokenizer).generate(["The "])
"""

import json
import os

import ml_collections

from input_pipeline import tokenizer as tokenizer_lib
from training import checkpoint, mesh as mesh_lib, state as train_state


def load(workdir, step=None, mesh=None):
  """Params of checkpoint `step` (default: the newest) laid out on `mesh` (default: data-parallel
  over the local devices, i.e. replicated params)."""
  config_path = os.path.join(workdir, "config.json")
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{workdir} is not a training workdir: it has no config.json")
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  mesh = mesh or mesh_lib.make_mesh(dict(data=-1, fsdp=1, tensor=1))
  graphdef, _, _, _, abstract = train_state.abstract_state(config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    step = ckpt.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{workdir}/checkpoints holds no finalized checkpoint")
    params = ckpt.restore(step, abstract)["params"]
  finally:
    ckpt.close()
  return config, graphdef, params, tokenizer_lib.Tokenizer(os.path.join(workdir, "tokenizer.model"))
