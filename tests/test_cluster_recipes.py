"""The cluster recipes in scripts/: the KubeRay RayJob manifest and the Slurm batch script."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from tests.test_search import TINY_SPACE

ROOT = Path(__file__).resolve().parents[1]
RAYJOB = ROOT / "scripts" / "kuberay" / "rayjob.yaml"
SBATCH = ROOT / "scripts" / "slurm" / "search.sbatch"


def documents() -> dict[str, dict]:
    return {doc["kind"] + "/" + doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(RAYJOB.read_text())}


def test_the_rayjob_has_what_kuberays_v1_crd_requires_and_keeps_trials_off_the_head() -> None:
    job = documents()["RayJob/nas-search"]
    assert job["apiVersion"] == "ray.io/v1"
    spec = job["spec"]
    cluster = spec["rayClusterSpec"]
    # Required by KubeRay's ray.io/v1 RayJob CRD: headGroupSpec.template; each worker group's groupName,
    # minReplicas, maxReplicas and template (the CRD's schema; no package ships it).
    assert cluster["headGroupSpec"]["template"]["spec"]["containers"]
    for group in cluster["workerGroupSpecs"]:
        assert {"groupName", "minReplicas", "maxReplicas", "template"} <= set(group)
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        [worker] = group["template"]["spec"]["containers"]
        assert worker["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert all(isinstance(v, str) for v in cluster["headGroupSpec"]["rayStartParams"].values())  # map of strings
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the head takes no trials
    # Ray's `ray start --head` requires a token; nodes that join by address send one only in token mode,
    # which KubeRay sets up for every pod (and the submitter) when asked.
    assert cluster["authOptions"] == {"mode": "token"}

    # The entrypoint is a `nas search` the project's own parser accepts, with the run folder on the head's
    # ReadWriteOnce volume and Tune's logs on the volume every pod mounts.
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["python", "scripts/search.py"] and (ROOT / argv[1]).is_file()
    from nas.app.cli import parser

    args = parser().parse_args(["search", *argv[2:]])
    given = args.settings_flags.given(args)
    [head] = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    mounts = {m["mountPath"]: m["name"] for m in head["volumeMounts"]}
    volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"]
               for v in cluster["headGroupSpec"]["template"]["spec"]["volumes"]}
    claims = documents()
    assert volumes[mounts[given["place"]["storage"]]] == "nas-runs"
    assert claims["PersistentVolumeClaim/nas-runs"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    shared = given["resources"]["tune_storage"]
    assert claims["PersistentVolumeClaim/nas-tune"]["spec"]["accessModes"] == ["ReadWriteMany"]
    for pod in [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]:
        [container] = pod["spec"]["containers"]
        assert any(shared.startswith(m["mountPath"]) and m["name"] == "tune" for m in container["volumeMounts"])


def test_the_pod_templates_and_volumes_are_valid_kubernetes() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    version = kubernetes_validate.latest_version()
    docs = documents()
    cluster = docs["RayJob/nas-search"]["spec"]["rayClusterSpec"]
    templates = [cluster["headGroupSpec"]["template"], *(g["template"] for g in cluster["workerGroupSpecs"])]
    for i, template in enumerate(templates):  # each group's pod template, as Kubernetes' own schema has it
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"t{i}"},
                                      "template": template}, version, strict=True)
    for doc in docs.values():
        if doc["apiVersion"] == "v1":
            kubernetes_validate.validate(doc, version, strict=True)
    broken = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "x"},
              "template": {"spec": {"containers": [{"name": "c", "image": "i", "volumeMount": []}]}}}
    with pytest.raises(kubernetes_validate.ValidationError):  # the check is real: a misspelt key is refused
        kubernetes_validate.validate(broken, version, strict=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_the_slurm_script_starts_a_head_and_a_worker_searches_and_copies_the_run_home(tmp_path: Path) -> None:
    """Two "nodes" on this machine: the script's head, and a worker that a stand-in `srun` starts here."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/bash\n# runs the step once, here: drops srun\'s options\n'
                                  'while [[ $# -gt 0 && $1 == -* ]]; do shift; done\nexec "$@"\n')
    (bin_dir / "srun").chmod(0o755)
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    port = _free_port()
    ray_tmp = tempfile.mkdtemp(prefix="nas-ray-", dir="/tmp")  # short: Ray's socket paths live under it
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHONPATH": str(ROOT),
           "SLURM_JOB_ID": "4242", "SLURM_JOB_NUM_NODES": "2", "SLURM_CPUS_PER_TASK": "1",
           "SLURM_SUBMIT_DIR": str(ROOT), "NAS_RUNS": str(tmp_path / "home"), "NAS_SCRATCH": str(tmp_path / "local"),
           "NAS_PYTHON": sys.executable, "RAY_HEAD_IP": "127.0.0.1", "RAY_PORT": str(port), "RAY_TMPDIR": ray_tmp,
           "NAS_JOIN_TIMEOUT": "120", "HOME": str(tmp_path / "user")}  # a home with no Ray token yet
    try:
        done = subprocess.run(["bash", str(SBATCH), "--space", str(space), "--trials", "2", "--epochs", "1",
                               "--data", "synthetic", "--max-train-samples", "128", "--max-val-samples", "64",
                               "--concurrency", "2", "--name", "slurm-run", "--progress-seconds", "30"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    # Ray's own count: the worker joined the head before the search started.
    assert f"joined the Ray cluster at 127.0.0.1:{port} (--address): 2 node(s), 2 CPUs" in done.stdout
    home = tmp_path / "home" / "slurm-run"
    with sqlite3.connect(home / "trials.db") as db:
        assert [row[0] for row in db.execute("SELECT status FROM trials")] == ["ok", "ok"]
    assert any((tmp_path / "home" / "tune").glob("slurm-run-tune-0/*/result.json"))  # Tune's logs: shared storage
    assert (tmp_path / "user" / ".ray" / "auth_token").is_file()  # the token every node shared
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pytest.fail("the script left its Ray head running")
