import json

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from training import cost


def _cost_cfg(**overrides):
  c = ml_collections.ConfigDict(dict(device_kind="", device_count=0, dollars_per_device_hour=0.0,
                                     device_watts=0.0, pue=1.1, kg_co2e_per_kwh=0.385))
  c.update(overrides)
  return c


@pytest.mark.parametrize("gpu_hours, mwh, tco2e", [
    (82_432, 36, 14),  # LLaMA-7B
    (1_022_362, 449, 173),  # LLaMA-65B
])
def test_llama_table_15(gpu_hours, mwh, tco2e):
  devices = 2048
  report = cost.cost_report(total_flops=1e23, device_kind="NVIDIA A100-SXM4-80GB",
                            device_count=devices, wall_seconds=gpu_hours * 3600 / devices,
                            mfu=None, cost_cfg=_cost_cfg())
  assert report["device_watts"] == 400
  assert report["accelerator_hours"] == pytest.approx(gpu_hours)
  assert int(report["kwh"] / 1000) == mwh  # the paper truncates
  assert round(report["kg_co2e"] / 1000) == tco2e
  assert report["dollars"] is None
  priced = cost.cost_report(1e23, "NVIDIA A100-SXM4-80GB", devices, gpu_hours * 3600 / devices,
                            None, _cost_cfg(dollars_per_device_hour=2.0))
  assert priced["dollars"] == pytest.approx(2.0 * gpu_hours)


def test_flops_per_token_matches_xla_count_of_a_decoder():
  """XLA's FLOP count of forward + backward of a matmul-only decoder (no embedding lookup)."""
  L, d, H, Q, F, V, T = 2, 64, 4, 16, 256, 100, 32
  layer = lambda: dict(q=jnp.ones((d, H, Q)), k=jnp.ones((d, H, Q)), v=jnp.ones((d, H, Q)),
                       o=jnp.ones((H, Q, d)), gate=jnp.ones((d, F)), up=jnp.ones((d, F)),
                       down=jnp.ones((F, d)))
  params = dict(layers=[layer() for _ in range(L)], unembed=jnp.ones((d, V)))

  def forward(params, x):  # x: [T, d] embedded tokens
    for p in params["layers"]:
      q, k, v = (jnp.einsum("td,dhq->thq", x, p[n]) for n in "qkv")
      a = jnp.einsum("hts,shq->thq", jnp.einsum("thq,shq->hts", q, k), v)
      x = x + jnp.einsum("thq,hqd->td", a, p["o"])
      h = jnp.einsum("td,df->tf", x, p["gate"]) * jnp.einsum("td,df->tf", x, p["up"])
      x = x + jnp.einsum("tf,fd->td", h, p["down"])
    return jnp.einsum("td,dv->tv", x, params["unembed"])  # [T, V] logits

  def train(params, x, cotangent):
    logits, vjp = jax.vjp(forward, params, x)
    return logits, vjp(cotangent)

  analysis = jax.jit(train).lower(params, jnp.ones((T, d)), jnp.ones((T, V))).compile() \
      .cost_analysis()
  analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
  n = sum(p.size for p in jax.tree.leaves(params))
  assert n == L * (4 * d * H * Q + 3 * d * F) + d * V
  expected = cost.flops_per_token(n, L, H, Q, T)
  assert expected == 6 * 137_472 + 12 * 2 * 4 * 16 * 32 == 873_984  # by hand
  # XLA also counts the few elementwise ops (residual adds, gating): +0.3%.
  assert analysis["flops"] / T == pytest.approx(expected, rel=5e-3)


@pytest.mark.parametrize("kind, dtype, peak", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989.5e12),
    ("NVIDIA H100 PCIe", "bfloat16", 756.5e12),
    ("NVIDIA H200", jnp.bfloat16, 989.5e12),
    ("NVIDIA A100-SXM4-80GB", "bfloat16", 312e12),
    ("NVIDIA A100-SXM4-80GB", "float32", 156e12),  # TF32 under XLA's default precision
    ("NVIDIA A100 80GB PCIe", "bf16", 312e12),
    ("NVIDIA A10G", "bfloat16", 70e12),
    ("NVIDIA L4", "bfloat16", 121e12),
    ("NVIDIA L40S", "bfloat16", 362.05e12),
    ("NVIDIA B200", "bfloat16", 2250e12),
    ("Tesla V100-SXM2-16GB", "float16", 125e12),
    ("Tesla V100-SXM2-16GB", "bfloat16", None),  # no bf16 hardware
    ("Tesla V100-SXM2-16GB", "float32", 15.7e12),
    ("TPU v3", "bfloat16", 61.5e12),  # per TensorCore: one JAX device
    ("TPU v4", "bfloat16", 275e12),
    ("TPU v5 lite", "bfloat16", 197e12),
    ("TPU v5p", "bfloat16", 459e12),
    ("TPU v6 lite", "bfloat16", 918e12),
    ("A100-80GB", "bfloat16", 312e12),  # short names from config.cost.device_kind
    ("NVIDIA H100 NVL", "bfloat16", None),  # other clocks and power: not guessed
    ("NVIDIA L40", "bfloat16", None),
    ("NVIDIA GB200", "bfloat16", None),
    ("cpu", "bfloat16", None),
])
def test_peak_table(kind, dtype, peak):
  assert cost.peak_flops(kind, dtype) == peak


def test_mfu():
  fpt = cost.flops_per_token(7e9, 32, 32, 128, 2048)
  assert cost.mfu(1000.0, fpt, 8, cost.peak_flops("NVIDIA A100-SXM4-80GB")) == \
      pytest.approx(1000 * fpt / (8 * 312e12))
  assert cost.mfu(1000.0, fpt, 8, cost.peak_flops(jax.devices()[0].device_kind)) is None
  with pytest.raises(ValueError, match="expected bfloat16, float16 or float32"):
    cost.peak_flops("TPU v4", "int8")


def test_plan_format_and_save(tmp_path):
  plan = cost.plan_cost(total_flops=3.12e20, device_kind="A100-80GB", device_count=8,
                        assumed_mfu=0.5, cost_cfg=_cost_cfg(dollars_per_device_hour=1.5))
  assert plan["wall_seconds"] == pytest.approx(3.12e20 / (312e12 * 0.5 * 8))  # 250,000 s
  assert plan["accelerator_hours"] == pytest.approx(250_000 * 8 / 3600)
  assert plan["dollars"] == pytest.approx(1.5 * 250_000 * 8 / 3600)
  text = cost.format_cost_report(plan)
  assert "cost report (planned)" in text and "8 x A100-80GB" in text and "MFU 50.0%" in text
  assert "$833.33" in text

  measured = cost.cost_report(1e15, "cpu", 1, 10.0, None, _cost_cfg())
  text = cost.format_cost_report(measured)
  assert "peak unknown for cpu: MFU not reported" in text
  assert "not estimated (set config.cost.dollars_per_device_hour)" in text
  assert "board power unknown" in text
  assert measured["kwh"] is None and measured["kg_co2e"] is None
  path = cost.save_cost_report(str(tmp_path), measured)
  assert json.load(open(path)) == measured
  with pytest.raises(ValueError, match="assumed_mfu=0"):
    cost.plan_cost(1e20, "TPU v4", 4, 0, _cost_cfg())
