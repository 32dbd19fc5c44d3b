"""Fine-tuning stages end to end on CPU: LoRA's promises, and SFT, reward model, DPO and PPO runs of
train.py (as the user runs them) from a tiny pretrained workdir, with resume after SIGKILL and
clear errors for bad settings.

The base model is the runlocal LLaMA trained 8 steps on the conftest corpus (vocab 400,
SentencePiece: the Alpaca template, since it has no ChatML tokens).
"""

import gzip
import json
import os
import signal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import test_train
from models.config import model_config
from models import transformer
from training import checkpoint, config as config_lib, config_check, mesh as mesh_lib, model_source
from training import state as train_state

TINY_MODEL = dict(vocab_size=64, num_layers=2, embed_dim=32, num_heads=4, num_kv_heads=2, head_dim=8, mlp_dim=48)
ALL_TARGETS = ("wq", "wk", "wv", "wo", "gate", "up", "down")


# ---------------------------------------------------------------- LoRA


@pytest.mark.parametrize("scan", [True, False])
def test_lora_zero_init_keeps_logits_and_merge_equals_adapters(scan):
  base_cfg = model_config(**TINY_MODEL, scan_layers=scan)
  cfg = model_config(**TINY_MODEL, scan_layers=scan, lora_rank=4, lora_alpha=8.0, lora_targets=ALL_TARGETS)
  base = transformer.init_params(base_cfg, 0)
  fresh = train_state.overlay(transformer.init_params(cfg, 1), base)
  tokens = jnp.arange(24).reshape(2, 12) % 64
  logits = lambda c, p: nnx.merge(transformer.split_model(transformer.abstract_model(c))[0], p)(tokens)[0]
  np.testing.assert_array_equal(logits(cfg, fresh), logits(base_cfg, base))  # B = 0: no change

  # Trained adapters: non-zero B. The merged base-shaped model computes the same function.
  keys = iter(jax.random.split(jax.random.key(2), 100))
  trained = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.05 * jax.random.normal(next(keys), x.shape) if transformer.is_adapter(path) else x, fresh)
  adapted = logits(cfg, trained)
  assert float(jnp.max(jnp.abs(adapted - logits(base_cfg, base)))) > 1e-2  # the adapters matter
  merged_cfg, merged = transformer.merge_lora(cfg, trained)
  assert merged_cfg.lora_rank == 0 and not any(transformer.is_adapter(p) for p, _ in
                                                 jax.tree_util.tree_flatten_with_path(merged)[0])
  np.testing.assert_allclose(logits(merged_cfg, merged), adapted, atol=2e-5)


def test_lora_dropout_only_with_a_key():
  cfg = model_config(**TINY_MODEL, lora_rank=4, lora_dropout=0.5)
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.1 if transformer.is_adapter(path) else x, transformer.init_params(cfg, 0))
  model = nnx.merge(transformer.split_model(transformer.abstract_model(cfg))[0], params)
  tokens = jnp.arange(12)[None] % 64
  eval_logits = model(tokens)[0]
  np.testing.assert_array_equal(eval_logits, model(tokens)[0])
  a, b = model(tokens, rng=jax.random.key(0))[0], model(tokens, rng=jax.random.key(1))[0]
  assert float(jnp.max(jnp.abs(a - eval_logits))) > 1e-4 and float(jnp.max(jnp.abs(a - b))) > 1e-4


def test_lora_step_trains_and_stores_only_adapters(tiny_config):
  c = tiny_config
  c.model.update(TINY_MODEL, lora_rank=2, lora_targets=("wq", "wv"))
  c.init_from = "unused-by-build"
  c.total_steps, c.batch_size, c.seq_len = 3, 2, 8
  mesh = mesh_lib.make_mesh(dict(data=1, fsdp=1, tensor=1), jax.devices()[:1])
  setup = train_state.build(c, mesh)
  base_cfg = c.model.copy_and_resolve_references()
  base_cfg.lora_rank = 0
  source = transformer.init_params(base_cfg, 7)
  state, frozen = setup.init(source), setup.bind(source)
  trained_paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state["params"])[0]]
  assert trained_paths and all("_lora" in p for p in trained_paths)  # optimizer state follows params
  rng = np.random.default_rng(0)
  batch = dict(inputs=rng.integers(0, 64, (2, 8)), targets=rng.integers(0, 64, (2, 8)),
               segment_ids=np.ones((2, 8), np.int32), positions=np.tile(np.arange(8), (2, 1)),
               loss_weights=np.ones((2, 8), np.float32))
  batch = train_state.to_global(setup.batch_sharding, batch)
  before = jax.tree.map(np.asarray, state["params"])
  for _ in range(2):
    state, metrics = setup.step(state, batch, frozen)
  assert np.isfinite(float(metrics["loss"]))
  changed = [not np.array_equal(a, np.asarray(b))
             for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(state["params"]))]
  assert any(changed)
  base_now = train_state.partition(c.model, train_state.overlay(transformer.init_params(c.model, 0), source))[1]
  for x, y in zip(jax.tree.leaves(frozen["base"]), jax.tree.leaves(base_now)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))  # the base model is never updated


# ---------------------------------------------------------------- train.py, stage by stage

WORDS = ("red", "blue", "cat", "dog", "sea", "ship", "king", "night")


def _sentence(rng, n):
  return " ".join(rng.choice(WORDS, size=n))


@pytest.fixture(scope="module")
def stage_files(corpus_dir, tmp_path_factory):
  """A tiny base workdir (8 pretraining steps) plus SFT rows and preference pairs files."""
  root = tmp_path_factory.mktemp("stages")
  base = root / "base"
  test_train.run_ok(test_train.train_args(corpus_dir, base, total_steps=8, checkpoint_every=4, eval_every=4,
                                            **{"mesh.data": -1}), devices=1)
  rng = np.random.default_rng(0)
  sft_rows = [dict(instruction=_sentence(rng, 3), input="", output=_sentence(rng, 4)) for _ in range(40)]
  sft_rows += [dict(instruction="no output field"), dict(instruction="empty", input="", output="  ")]
  (root / "sft.jsonl").write_text("\n".join(json.dumps(r) for r in sft_rows) + "\nnot json\n")
  pairs = []
  for _ in range(40):
    prompt = f"\n\nHuman: {_sentence(rng, 3)}\n\nAssistant:"
    pairs.append(dict(chosen=prompt + " " + _sentence(rng, 3), rejected=prompt + " " + _sentence(rng, 5)))
  same = "\n\nHuman: hi\n\nAssistant: the same reply"
  pairs.append(dict(chosen=same, rejected=same))
  with gzip.open(root / "pairs.jsonl.gz", "wt") as f:
    f.write("\n".join(json.dumps(p) for p in pairs) + "\n")
  return dict(root=root, base=str(base), sft=str(root / "sft.jsonl"), pairs=str(root / "pairs.jsonl.gz"))


def stage_args(config, workdir, files, **overrides):
  fields = {"finetune.template": "alpaca", "mesh.data": 1, "data.data_dir": str(files["root"]), "seq_len": 256}
  fields.update(overrides)
  arg = f"--config=configs/{config},runlocal=True,init_from={files['base']}"
  return ["train.py", arg, f"--workdir={workdir}", "--verbosity=-1"] + [f"--config.{k}={v}" for k, v in fields.items()]


def records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def reward_workdir(stage_files):
  workdir = stage_files["root"] / "rm"
  result = test_train.run_ok(stage_args("reward.py:tiny_hh", workdir, stage_files,
                                        **{"finetune.train_files": f"('{stage_files['pairs']}',)"}), devices=1)
  return str(workdir), result.stdout


def test_sft_lora_run_skips_bad_rows_and_saves_only_adapters(stage_files, tmp_path):
  workdir = tmp_path / "sft"
  result = test_train.run_ok(stage_args("sft.py:tiny_alpaca", workdir, stage_files, **{
      "finetune.train_files": f"('{stage_files['sft']}',)", "model.lora_rank": 4}), devices=1)
  for counted in ("'missing output': 1", "'empty output': 1", "'not JSON': 1"):
    assert counted in result.stdout, result.stdout
  logged = records(workdir)
  assert any("eval_loss" in r for r in logged) and all(np.isfinite(r["loss"]) for r in logged if "loss" in r)
  config = config_lib.read_config(str(workdir))
  assert config.finetune.template == "alpaca" and config.model.lora_rank == 4  # saved with the run
  mesh = mesh_lib.make_mesh(dict(data=1, fsdp=1, tensor=1), jax.devices()[:1])
  abstract = train_state.abstract_state(config, mesh)[4]
  stored = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  try:
    params = stored.restore(stored.latest_step(), abstract)["params"]
  finally:
    stored.close()
  assert all("_lora" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0])
  # model_source.load folds the adapters into the base: a plain model, different from the base.
  loaded_cfg, graphdef, merged, tokenizer = model_source.load(str(workdir))
  assert loaded_cfg.model.lora_rank == 0 and tokenizer.vocab_size == 400
  _, base_graphdef, base_params, _ = model_source.load(stage_files["base"])
  tokens = jnp.arange(10)[None] + 5
  diff = nnx.merge(graphdef, merged)(tokens)[0] - nnx.merge(base_graphdef, base_params)(tokens)[0]
  assert float(jnp.max(jnp.abs(diff))) > 1e-4


def test_reward_model_run_reports_held_out_accuracy(reward_workdir):
  workdir, stdout = reward_workdir
  assert "pairwise accuracy" in stdout and "'identical chosen and rejected': 1" in stdout, stdout
  final = [r for r in records(workdir) if "eval_accuracy" in r][-1]
  assert 0.0 <= final["eval_accuracy"] <= 1.0 and np.isfinite(final["eval_loss"])
  _, graphdef, params, _ = model_source.load(workdir)
  assert nnx.merge(graphdef, params).cfg.score_head


@pytest.mark.parametrize("reference", ["on_the_fly", "precomputed"])
def test_dpo_starts_at_log2_with_either_reference(stage_files, tmp_path, reward_workdir, reference):
  """At step 1 the policy is the reference, so every pair's DPO loss is log 2, whichever way
  the reference log-probabilities are obtained."""
  workdir = tmp_path / reference
  result = test_train.run_ok(stage_args("dpo.py:tiny_hh", workdir, stage_files, **{
      "finetune.train_files": f"('{stage_files['pairs']}',)", "dpo.reference": reference,
      "reward_model": reward_workdir[0], "log_every": 1}), devices=1)
  logged = records(workdir)
  first = [r for r in logged if r.get("step") == 1][0]
  assert first["loss"] == pytest.approx(np.log(2.0), abs=1e-5)
  assert first["accuracy"] == 0.0 and first["margin"] == pytest.approx(0.0, abs=1e-5)
  judged = [r for r in logged if "judge/win_rate" in r][-1]
  assert 0.0 <= judged["judge/win_rate"] <= 1.0 and judged["judge/prompts"] == 4
  assert "judged by the reward model" in result.stdout


def test_ppo_runs_and_resumes_after_sigkill_exactly(stage_files, tmp_path, reward_workdir):
  args = lambda w: stage_args("ppo.py:tiny_hh", w, stage_files, **{
      "finetune.train_files": f"('{stage_files['pairs']}',)", "reward_model": reward_workdir[0],
      "total_steps": 6, "checkpoint_every": 2, "eval_every": 6, "async_checkpointing": False})
  full = tmp_path / "full"
  test_train.run_ok(args(full), devices=1)
  logged = records(full)
  steps_logged = [r for r in logged if "rollout/reward" in r]
  assert len(steps_logged) == 6
  for key in ("loss", "value_loss", "clip_fraction", "approx_kl", "rollout/kl", "rollout/response_length"):
    assert all(np.isfinite(r[key]) for r in steps_logged), key
  assert [r for r in logged if "judge/win_rate" in r]

  killed = tmp_path / "killed"
  process = test_train.start(args(killed), devices=1)
  try:
    test_train.wait_until(process, lambda: test_train.checkpoint_after(killed, 0), "the first checkpoint")
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
  finally:
    process.kill()
  assert test_train.finalized_steps(killed)[-1] < 6
  test_train.run_ok(args(killed), devices=1)
  resumed = test_train.rows_by_step(killed)
  for row in steps_logged:  # the same rollouts and updates as the uninterrupted run
    for key in ("loss", "value_loss", "rollout/reward", "rollout/kl"):
      assert resumed[row["step"]][key] == pytest.approx(row[key], rel=1e-5, abs=1e-6), (row["step"], key)


# ---------------------------------------------------------------- bad input


def test_reward_model_with_another_tokenizer_is_refused(tiny_tokenizer):
  class Other:
    vocab_size, eos_id = tiny_tokenizer.vocab_size + 1, tiny_tokenizer.eos_id
    encode = staticmethod(lambda text: [1, 2, 3])
  with pytest.raises(ValueError, match="does not match the policy's"):
    model_source.check_same_tokenizer(tiny_tokenizer, Other(), "config.reward_model 'rm'")
  model_source.check_same_tokenizer(tiny_tokenizer, tiny_tokenizer, "same")


@pytest.mark.parametrize("spec, overrides, message", [
    ("sft.py:tiny_alpaca", dict(init_from=""), "model.lora_rank"),  # set below: LoRA without a base
    ("ppo.py:tiny_hh", dict(reward_model=""), "reward_model"),
    ("ppo.py:tiny_hh", dict(checkpoint_every=3), "multiple of the 4 steps per rollout"),
    ("dpo.py:tiny_hh", dict(batch_size=6, grad_accum_steps=2), "even number of rows"),
    ("reward.py:tiny_hh", {"finetune.pairs_format": "csv"}, "finetune.pairs_format"),
])
def test_bad_finetune_configs_name_the_field(spec, overrides, message):
  config = config_lib.load_config(f"configs/{spec}")
  if spec.startswith("sft"):
    config.model.lora_rank = 4
  for key, value in overrides.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  with pytest.raises(config_check.ConfigError, match=message):
    config_check.check(config, 1)
