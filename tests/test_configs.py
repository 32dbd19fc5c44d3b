"""Every preset passes the config checks, and config arguments parse or fail clearly."""

import pytest

from configs import dpo, llama, palm, ppo, reward, sft
from training import config as config_lib
from training import config_check

PRESETS = [(llama, v) for v in ("tiny", "shakespeare", "gpt2s", "7b", "13b", "33b", "65b")] + [
    (palm, v) for v in ("tiny", "8b", "62b", "540b")]


@pytest.mark.parametrize("family,variant", PRESETS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("runlocal", [False, True])
def test_presets_are_valid(family, variant, runlocal):
  config = family.get_config(f"{variant},runlocal={runlocal}")
  sizes = config_check.check(config, device_count=8)
  assert sizes["data"] * sizes["fsdp"] * sizes["tensor"] == 8
  assert "python train.py --config=configs/" in family.__doc__  # docstrings carry the command


FINETUNE_PRESETS = ([(sft, v) for v in ("smollm2_fireact", "smollm2_alpaca", "tiny_alpaca")] +
                    [(reward, v) for v in ("smollm2_hh", "smollm2_hh_lora", "tiny_hh")] +
                    [(dpo, v) for v in ("smollm2_hh", "smollm2_demo", "tiny_hh")] +
                    [(ppo, v) for v in ("smollm2_hh", "tiny_hh")])


@pytest.mark.parametrize("family,variant", FINETUNE_PRESETS, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("runlocal", [False, True])
def test_finetune_presets_are_valid(family, variant, runlocal):
  """Checked as on this 1-device CPU (the model fields come from init_from at run time)."""
  config = family.get_config(f"{variant},runlocal={runlocal}")
  config_check.check(config, device_count=1)
  assert config.init_from and "python train.py --config=configs/" in family.__doc__


def test_config_args():
  assert llama.get_config("variant=tiny,runlocal=True").model.num_layers == 2
  with pytest.raises(ValueError, match="unknown key 'size'"):
    llama.get_config("size=7b")
  with pytest.raises(ValueError, match="unknown variant 'huge'"):
    palm.get_config("huge")
  assert config_lib.load_config("configs/llama.py:7b").model.embed_dim == 4096


@pytest.mark.parametrize("field,value,message", [
    ("model.num_kv_heads", 4, "a divisor of model.num_heads"),
    ("model.dtype", "float8", "one of"),
    ("grad_accum_steps", 3, "a divisor of batch_size"),
    ("optimizer.warmup_steps", 10**9, "between 0 and total_steps"),
    ("mesh.tensor", 3, "does not divide"),
])
def test_bad_fields_are_named(field, value, message):
  config = llama.get_config("tiny")
  node = config
  *parents, leaf = field.split(".")
  for p in parents:
    node = node[p]
  node[leaf] = value
  with pytest.raises(config_check.ConfigError, match=message) as e:
    config_check.check(config, device_count=8)
  assert field.split(".")[-1] in str(e.value) or "mesh" in str(e.value)


def test_benchmark_evals_are_checked_before_training():
  """train.py runs eval/suite.py's check of config.evals.tasks before anything compiles."""
  from eval import suite
  c = llama.get_config("tiny")
  c.evals.tasks = ("arc_easy", "hotpotqa/react")
  config_check.check(c, device_count=1)
  suite.check_specs(c.evals.tasks)
  c.evals.tasks = ("arc_easy", "hellaswagg")
  with pytest.raises(config_check.ConfigError, match="evals.tasks: unknown task 'hellaswagg'"):
    suite.check_specs(c.evals.tasks)
  c.evals.tasks = ("hotpotqa",)
  with pytest.raises(config_check.ConfigError, match="need a mode"):
    suite.check_specs(c.evals.tasks)


def test_eval_configs():
  from configs import eval as eval_configs
  from eval import suite
  for variant in ("smollm2", "smollm2_full", "workdir", "fireact", "smoke"):
    for spec in eval_configs.get_config(variant).tasks:
      suite.parse(spec)
  with pytest.raises(ValueError, match="unknown eval config variant"):
    eval_configs.get_config("nope")
