"""Joining a multi-process run: call `initialize()` first, before anything touches jax devices.

Where the process layout comes from, first match wins:
  1. explicit arguments, else the env vars FRUGAL_COORDINATOR_ADDRESS ("host:port" of process 0),
     FRUGAL_NUM_PROCESSES and FRUGAL_PROCESS_ID: all three or none;
  2. SLURM (SLURM_JOB_ID with SLURM_NTASKS > 1, i.e. launched by srun) or a multi-host TPU
     (MEGASCALE_COORDINATOR_ADDRESS, or TPU_WORKER_HOSTNAMES / TPU_PROCESS_ADDRESSES listing
     more than one host): jax.distributed.initialize() detects the rest itself;
  3. otherwise a single process, and nothing is done.
On CPU, cross-process collectives need an implementation; Gloo is selected (jax 0.10's default).
"""

import os

import jax
from absl import logging

ENV_ADDRESS = "FRUGAL_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "FRUGAL_NUM_PROCESSES"
ENV_PROCESS_ID = "FRUGAL_PROCESS_ID"


def _int_env(environ, name, default):
  value = environ.get(name, "")
  if value == "":
    return default
  try:
    return int(value)
  except ValueError:
    raise ValueError(f"${name}={value!r}: expected an integer") from None


def _hosts(value):
  return [h for h in (value or "").split(",") if h.strip()]


def plan(coordinator_address="", num_processes=0, process_id=-1, environ=None):
  """How to initialise: None (single process), "auto" (cluster auto-detection) or the explicit
  dict(coordinator_address, num_processes, process_id). Raises on partial or invalid settings."""
  environ = os.environ if environ is None else environ
  address = coordinator_address or environ.get(ENV_ADDRESS, "")
  count = num_processes or _int_env(environ, ENV_NUM_PROCESSES, 0)
  pid = process_id if process_id >= 0 else _int_env(environ, ENV_PROCESS_ID, -1)
  given = {"coordinator_address": bool(address), "num_processes": count > 0, "process_id": pid >= 0}
  if any(given.values()):
    missing = [k for k, v in given.items() if not v]
    if missing:
      raise ValueError(
          f"multi-process settings are incomplete: missing {', '.join(missing)} "
          f"(got coordinator_address={address!r}, num_processes={count}, process_id={pid}); "
          f"set all three (arguments or ${ENV_ADDRESS}, ${ENV_NUM_PROCESSES}, ${ENV_PROCESS_ID}) "
          "or none")
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
      raise ValueError(f"coordinator_address={address!r}: expected 'host:port' of process 0")
    if not 0 <= pid < count:
      raise ValueError(f"process_id={pid}: expected 0 <= process_id < num_processes={count}")
    return dict(coordinator_address=address, num_processes=count, process_id=pid)

  if "SLURM_JOB_ID" in environ and _int_env(environ, "SLURM_NTASKS", 1) > 1:
    return "auto"
  if (environ.get("MEGASCALE_COORDINATOR_ADDRESS")
      or len(_hosts(environ.get("TPU_PROCESS_ADDRESSES") or environ.get("TPU_WORKER_HOSTNAMES"))) > 1):
    return "auto"
  return None


def initialize(coordinator_address="", num_processes=0, process_id=-1):
  """Joins the run described by the arguments or environment; returns
  (process_index, process_count)."""
  how = plan(coordinator_address, num_processes, process_id)
  if how is not None:
    # Cross-process collectives on CPU devices need an implementation (older jax: none).
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
      jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if how == "auto":
      logging.info("jax.distributed.initialize(): cluster auto-detection (SLURM / TPU)")
      jax.distributed.initialize()
    else:
      logging.info("jax.distributed.initialize(%s)", how)
      jax.distributed.initialize(**how)
  return jax.process_index(), jax.process_count()
