"""FLOPs per token, MFU, and what a run costs in accelerator-hours, dollars, energy and CO2e.

MFU (model FLOPs utilisation, PaLM paper appendix B) counts only the FLOPs the model needs
(`flops_per_token`), never rematerialisation, against the dense peak of the devices. Peaks are the
vendors' dense (no 2:4 sparsity) figures per JAX device, so MFU is comparable to published ones.
A device missing from the table gets None, and the caller reports "MFU not reported" rather than
a made-up number.

Energy follows the LLaMA paper (Touvron et al. 2023, section 5.2 and Table 15):
  kWh = device-hours x board watts / 1000 x PUE;  tCO2e = MWh x carbon intensity.
"""

import collections
import json
import os
import re

import numpy as np

# ----------------------------------------------------------------------------------------------
# Per-device peaks (FLOP/s, dense) and board power (W).
#   bf16: 16-bit tensor-core / MXU peak with f32 accumulation.
#   fp16: only where it differs from bf16 (Volta has fp16 tensor cores and no bf16).
#   tf32: Ampere and later run f32 matmuls as TF32 under XLA's default precision, so this is the
#         f32 peak that applies to a JAX run; None where the hardware has no TF32.
#   fp32: plain CUDA-core FP32 (non-tensor-core). On TPUs XLA's default precision computes f32
#         matmuls in one bf16 MXU pass, so the f32 peak there equals the bf16 one.
#   watts: board power (TDP / max power); None where the vendor publishes none.
# NVIDIA datasheets print "with sparsity" figures; dense = half of those.
Device = collections.namedtuple("Device", "name bf16 fp16 tf32 fp32 watts")
T = 1e12
DEVICES = {
    # Tesla V100 datasheet (volta-v100-datasheet-us-nvidia-1165301-r5): SXM2 125 TF fp16 tensor,
    # 15.7 TF fp32, 300 W; PCIe 112 TF, 14 TF, 250 W. No bf16 hardware: bf16 peak unknown.
    "v100-sxm2": Device("Tesla V100 SXM2", None, 125 * T, None, 15.7 * T, 300),
    "v100-pcie": Device("Tesla V100 PCIe", None, 112 * T, None, 14 * T, 250),
    # A100 datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4): 312 TF bf16, 156 TF tf32,
    # 19.5 TF fp32 for every form factor; 400 W SXM4 (the figure the LLaMA paper uses),
    # 250 W PCIe 40GB, 300 W PCIe 80GB.
    "a100-sxm4": Device("A100 SXM4", 312 * T, 312 * T, 156 * T, 19.5 * T, 400),
    "a100-pcie-40gb": Device("A100 PCIe 40GB", 312 * T, 312 * T, 156 * T, 19.5 * T, 250),
    "a100-pcie-80gb": Device("A100 PCIe 80GB", 312 * T, 312 * T, 156 * T, 19.5 * T, 300),
    # A10G (AWS G5): NVIDIA publishes no datasheet; figures from Baseten's "NVIDIA A10 vs A10G"
    # (70 TF bf16, 35 TF fp32, 300 W), the same source Levanter's flop_utils cites.
    "a10g": Device("A10G", 70 * T, 70 * T, None, 35 * T, 300),
    # L4 datasheet: 242* TF bf16, 120* TF tf32 (* sparse), 30.3 TF fp32, 72 W.
    "l4": Device("L4", 121 * T, 121 * T, 60 * T, 30.3 * T, 72),
    # L40S datasheet: 362.05 | 733* TF bf16, 183 | 366* TF tf32, 91.6 TF fp32, 350 W.
    "l40s": Device("L40S", 362.05 * T, 362.05 * T, 183 * T, 91.6 * T, 350),
    # H100 datasheet: SXM 1979* TF bf16, 989* tf32, 67 TF fp32, up to 700 W;
    # PCIe 1513* TF bf16, 756* tf32, 51 TF fp32, 300-350 W.
    "h100-sxm": Device("H100 SXM", 989.5 * T, 989.5 * T, 494.5 * T, 67 * T, 700),
    "h100-pcie": Device("H100 PCIe", 756.5 * T, 756.5 * T, 378 * T, 51 * T, 350),
    # H200 datasheet (SXM): same tensor peaks as H100 SXM, up to 700 W.
    "h200": Device("H200 SXM", 989.5 * T, 989.5 * T, 494.5 * T, 67 * T, 700),
    # Blackwell datasheet, HGX B200 at 1000 W: 4.5* PF bf16, 2.2* PF tf32, 80 TF fp32.
    "b200": Device("B200 (HGX)", 2250 * T, 2250 * T, 1100 * T, 80 * T, 1000),
    # Cloud TPU system-architecture pages (cloud.google.com/tpu/docs/v2 ... v6e), per chip:
    # v2 45 TF, v3 123 TF bf16; there JAX sees each of the 2 TensorCores as a device, so halve.
    "tpu-v2": Device("TPU v2 core", 22.5 * T, None, None, 22.5 * T, None),
    "tpu-v3": Device("TPU v3 core", 61.5 * T, None, None, 61.5 * T, None),
    # v4 (megacore: one device per chip) 275 TF; 192 W max (TPU v4 paper, Jouppi et al. 2023).
    "tpu-v4": Device("TPU v4", 275 * T, None, None, 275 * T, 192),
    "tpu-v5e": Device("TPU v5e", 197 * T, None, None, 197 * T, None),
    "tpu-v5p": Device("TPU v5p", 459 * T, None, None, 459 * T, None),
    "tpu-v6e": Device("TPU v6e (Trillium)", 918 * T, None, None, 918 * T, None),
}
del T

# jax device_kind (exact, lower case) for TPUs; see jax/_src/mesh_utils.py.
_TPU_KINDS = {
    "tpu v2": "tpu-v2", "tpu v3": "tpu-v3", "tpu v4": "tpu-v4",
    "tpu v5 lite": "tpu-v5e", "tpu v5e": "tpu-v5e", "tpu v5p": "tpu-v5p", "tpu v5": "tpu-v5p",
    "tpu v6 lite": "tpu-v6e", "tpu v6e": "tpu-v6e",
}


def device_key(device_kind):
  """jax `device_kind` (e.g. "NVIDIA H100 80GB HBM3", "TPU v5 lite") or a short name used to
  plan a run (e.g. "A100-80GB", "H100") -> a DEVICES key, or None if not in the table."""
  kind = (device_kind or "").strip().lower()
  if kind in _TPU_KINDS:
    return _TPU_KINDS[kind]
  has = lambda word: re.search(rf"(^|[^a-z0-9]){word}($|[^a-z0-9])", kind) is not None
  if "gb200" in kind or "nvl" in kind:  # different clocks and power from the parts listed
    return None
  if "h100" in kind:
    return "h100-pcie" if "pcie" in kind else "h100-sxm"
  if "h200" in kind:
    return "h200"
  if "b200" in kind:
    return "b200"
  if "a100" in kind:
    if "pcie" in kind:
      return "a100-pcie-80gb" if "80gb" in kind else "a100-pcie-40gb"
    return "a100-sxm4"
  if has("a10g"):
    return "a10g"
  if has("l40s"):
    return "l40s"
  if has("l4"):
    return "l4"
  if "v100" in kind and "v100s" not in kind:
    return "v100-pcie" if "pcie" in kind else "v100-sxm2"
  return None


def _dtype_name(dtype):
  aliases = {"bf16": "bfloat16", "fp16": "float16", "f16": "float16",
             "f32": "float32", "fp32": "float32"}
  name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
  name = aliases.get(name, name)
  if name not in ("bfloat16", "float16", "float32"):
    raise ValueError(f"dtype {dtype!r}: expected bfloat16, float16 or float32")
  return name


def peak_flops(device_kind, dtype="bfloat16"):
  """Dense peak FLOP/s of one JAX device for matmuls in `dtype`, or None if unknown."""
  key = device_key(device_kind)
  if key is None:
    return None
  d = DEVICES[key]
  name = _dtype_name(dtype)
  if name == "float32":
    return d.tf32 or d.fp32
  return d.bf16 if name == "bfloat16" else d.fp16


def device_watts(device_kind):
  key = device_key(device_kind)
  return None if key is None else DEVICES[key].watts


def flops_per_token(num_matmul_params, num_layers, num_heads, head_dim, seq_len):
  """Training FLOPs per token, forward + backward, attention included (PaLM appendix B):

    6 N + 12 L H Q T

  N = parameters that take part in matmuls: every projection and the output (unembedding)
  matrix, but not the input embedding table, which is a lookup, nor norms. L layers, H query
  heads of width Q, sequence length T. 6N is 2 FLOPs per multiply-add x 3 (forward, and the
  two backward matmuls); 12LHQT is the QK^T and attention-times-V matmuls, counted for the full
  (unmasked) T x T square as PaLM does.
  """
  return 6 * num_matmul_params + 12 * num_layers * num_heads * head_dim * seq_len


def mfu(tokens_per_second, flops_per_token, device_count, peak):
  """Fraction of the devices' peak spent on model FLOPs; None when the peak is unknown."""
  if not peak:
    return None
  return tokens_per_second * flops_per_token / (device_count * peak)


def _report(total_flops, device_kind, device_count, wall_seconds, mfu_value, cost_cfg, dtype,
            kind_of_report):
  watts = cost_cfg.device_watts or device_watts(device_kind)
  price = cost_cfg.dollars_per_device_hour or None
  hours = None if wall_seconds is None else wall_seconds * device_count / 3600
  kwh = None if hours is None or watts is None else hours * watts / 1000 * cost_cfg.pue
  return {
      "report": kind_of_report,  # "measured" or "planned"
      "device_kind": device_kind,
      "device_count": int(device_count),
      "dtype": _dtype_name(dtype),
      "peak_flops_per_device": peak_flops(device_kind, dtype),
      "total_flops": float(total_flops),
      "mfu": mfu_value,
      "wall_seconds": wall_seconds,
      "accelerator_hours": hours,
      "dollars_per_device_hour": price,
      "dollars": None if hours is None or price is None else hours * price,
      "device_watts": watts,
      "pue": cost_cfg.pue,
      "kwh": kwh,
      "kg_co2e_per_kwh": cost_cfg.kg_co2e_per_kwh,
      "kg_co2e": None if kwh is None else kwh * cost_cfg.kg_co2e_per_kwh,
  }


def cost_report(total_flops, device_kind, device_count, wall_seconds, mfu, cost_cfg,
                dtype="bfloat16"):
  """What a finished run cost. `wall_seconds` is the training time measured on the devices;
  `cost_cfg` is config.cost (price, watts override, PUE, carbon intensity)."""
  return _report(total_flops, device_kind, device_count, wall_seconds, mfu, cost_cfg, dtype,
                 "measured")


def plan_cost(total_flops, device_kind, device_count, assumed_mfu, cost_cfg, dtype="bfloat16"):
  """What a run would cost: time = FLOPs / (peak x MFU x devices). None fields if the peak is
  unknown."""
  if not 0 < assumed_mfu <= 1:
    raise ValueError(f"assumed_mfu={assumed_mfu}: expected a fraction of peak in (0, 1]")
  peak = peak_flops(device_kind, dtype)
  seconds = None if peak is None else total_flops / (peak * assumed_mfu * device_count)
  return _report(total_flops, device_kind, device_count, seconds, assumed_mfu, cost_cfg, dtype,
                 "planned")


def format_cost_report(report):
  """A readable block for the console / README."""
  r = report
  peak = r["peak_flops_per_device"]
  peak_text = (f"peak {peak / 1e12:,.1f} TFLOP/s {r['dtype']}" if peak
               else f"peak unknown for {r['device_kind']}: MFU not reported")
  mfu_text = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
  if r["wall_seconds"] is None:
    time_text = "unknown (no peak to plan from)"
  else:
    time_text = (f"{r['wall_seconds'] / 3600:,.2f} h wall, "
                 f"{r['accelerator_hours']:,.1f} accelerator-hours")
  dollars_text = (f"${r['dollars']:,.2f}" if r["dollars"] is not None
                  else "not estimated (set config.cost.dollars_per_device_hour)")
  if r["kwh"] is None:
    energy_text = "not estimated (board power unknown: set config.cost.device_watts)"
    co2_text = "not estimated"
  else:
    energy_text = f"{r['kwh']:,.1f} kWh ({r['device_watts']:,.0f} W/device x PUE {r['pue']})"
    co2_text = f"{r['kg_co2e']:,.1f} kg CO2e ({r['kg_co2e_per_kwh']} kg/kWh)"
  return "\n".join([
      f"cost report ({r['report']})",
      f"  devices    {r['device_count']} x {r['device_kind']} ({peak_text})",
      f"  compute    {r['total_flops']:.3e} FLOPs at MFU {mfu_text}",
      f"  time       {time_text}",
      f"  dollars    {dollars_text}",
      f"  energy     {energy_text}",
      f"  emissions  {co2_text}",
  ])


def save_cost_report(workdir, report, name="cost_report.json"):
  os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, name)
  with open(path, "w") as f:
    json.dump(report, f, indent=2, allow_nan=False)
    f.write("\n")
  return path
