import json
import os
import subprocess
import sys
import textwrap

import portpicker
import pytest

from training import distributed

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Each process owns 4 CPU devices and contributes rows [4i, 4i+4) of an 8-row global array.
_WORKER = textwrap.dedent("""
    import json
    import numpy as np
    from training import distributed
    index, count = distributed.initialize()  # from the FRUGAL_* environment
    import jax, jax.numpy as jnp
    from jax.experimental import multihost_utils
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = np.arange(4 * index, 4 * index + 4, dtype=np.float32)
    x = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), rows)
    psum = jax.jit(jax.shard_map(lambda v: jax.lax.psum(v, "data"), mesh=mesh,
                                 in_specs=P("data"), out_specs=P()))(x)
    total = jax.jit(jnp.sum, out_shardings=NamedSharding(mesh, P()))(x)
    gathered = multihost_utils.process_allgather(x, tiled=True)
    print("RESULT " + json.dumps(dict(
        index=index, count=count, devices=jax.device_count(),
        local_devices=jax.local_device_count(), kind=jax.devices()[0].platform,
        psum=float(psum.addressable_data(0)[0]), total=float(total.addressable_data(0)),
        gathered=np.asarray(gathered).tolist())), flush=True)
""")


def test_two_cpu_processes_share_collectives(tmp_path):
  script = tmp_path / "worker.py"
  script.write_text(_WORKER)
  port = portpicker.pick_unused_port()
  procs = []
  for index in range(2):
    env = dict(os.environ, PYTHONPATH=REPO, JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=4",
               FRUGAL_COORDINATOR_ADDRESS=f"localhost:{port}", FRUGAL_NUM_PROCESSES="2",
               FRUGAL_PROCESS_ID=str(index))
    procs.append(subprocess.Popen([sys.executable, str(script)], env=env, cwd=REPO, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
  results = []
  for proc in procs:
    try:
      out, _ = proc.communicate(timeout=180)
    finally:
      if proc.poll() is None:
        proc.kill()
    lines = [l for l in out.splitlines() if l.startswith("RESULT ")]  # noqa: E741
    assert proc.returncode == 0 and lines, out[-3000:]
    results.append(json.loads(lines[-1][len("RESULT "):]))
  want = sum(range(8))
  for index, r in enumerate(results):
    assert (r["index"], r["count"]) == (index, 2)
    assert (r["devices"], r["local_devices"], r["kind"]) == (8, 4, "cpu")
    assert r["psum"] == r["total"] == want
    assert r["gathered"] == list(range(8))


def test_plan_resolution():
  assert distributed.plan(environ={}) is None
  explicit = dict(coordinator_address="10.0.0.1:1234", num_processes=4, process_id=3)
  assert distributed.plan(**explicit, environ={}) == explicit
  env = {"FRUGAL_COORDINATOR_ADDRESS": "host:99", "FRUGAL_NUM_PROCESSES": "2",
         "FRUGAL_PROCESS_ID": "0"}
  assert distributed.plan(environ=env) == dict(coordinator_address="host:99", num_processes=2,
                                               process_id=0)
  assert distributed.plan(process_id=1, environ=env)["process_id"] == 1  # arguments win
  assert distributed.plan(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "8"}) == "auto"
  assert distributed.plan(environ={"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}) is None
  assert distributed.plan(environ={"TPU_WORKER_HOSTNAMES": "t0,t1,t2,t3"}) == "auto"
  assert distributed.plan(environ={"TPU_WORKER_HOSTNAMES": "localhost"}) is None
  assert distributed.plan(environ={"MEGASCALE_COORDINATOR_ADDRESS": "c:8080"}) == "auto"


@pytest.mark.parametrize("kwargs, env, message", [
    (dict(coordinator_address="h:1"), {}, "missing num_processes, process_id"),
    ({}, {"FRUGAL_NUM_PROCESSES": "2", "FRUGAL_PROCESS_ID": "1"}, "missing coordinator_address"),
    (dict(coordinator_address="h", num_processes=2, process_id=0), {}, "expected 'host:port'"),
    (dict(coordinator_address="h:1", num_processes=2, process_id=2), {}, "process_id=2"),
    ({}, {"FRUGAL_NUM_PROCESSES": "two"}, "FRUGAL_NUM_PROCESSES='two'"),
])
def test_partial_settings_fail_clearly(kwargs, env, message):
  with pytest.raises(ValueError, match=message):
    distributed.plan(**kwargs, environ=env)
