"""A local multi-node Ray cluster (head + 2 worker nodes on 127.0.0.1): a worker node dies mid-search."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from nas.runs import search  # noqa: E402
from tests.test_search import TINY_SPACE, tiny_config  # noqa: E402


def finished(run_dir: Path) -> int:
    path = run_dir / "trials.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM trials WHERE status != 'running'").fetchone()[0]


@pytest.mark.slow
def test_search_survives_a_lost_worker_node(tmp_path: Path) -> None:
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY_SPACE)
    config = tiny_config(tmp_path, space, trials=10, name="multinode", resources={"address": cluster.address},
                         proxy={"dataset": "synthetic", "max_train_samples": 2048, "max_val_samples": 64})
    run_dir = config.run_dir()
    killed: dict[str, float] = {}

    def kill_a_worker_mid_search() -> None:
        deadline = time.time() + 300
        while finished(run_dir) < 2 and time.time() < deadline:
            time.sleep(0.2)
        cluster.remove_node(workers[0], allow_graceful=False)
        killed["after"] = finished(run_dir)

    killer = threading.Thread(target=kill_a_worker_mid_search, daemon=True)
    killer.start()
    try:
        summary = search.run(config)
        lost_node_dead = not workers[0].any_processes_alive()
    finally:
        ray.shutdown()
        cluster.shutdown()
    killer.join(timeout=5)
    assert "after" in killed and killed["after"] < 10, "the worker node was not killed mid-search"
    assert lost_node_dead
    with sqlite3.connect(run_dir / "trials.db") as db:
        statuses = [row[0] for row in db.execute("SELECT status FROM trials")]
    assert len(statuses) == 10 and statuses.count("running") == 0
    assert summary["counts"]["ok"] + summary["counts"]["failed"] == 10
    assert summary["counts"]["ok"] >= 8  # trials lost with the node are retried on the survivor


def test_the_cluster_file_is_valid_for_rays_launcher_and_keeps_trials_off_the_head() -> None:
    import yaml
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "cluster.yaml").read_text())
    validate_config(prepare_config(config))  # what `ray up` checks (its schema; raises on an invalid file)
    with pytest.raises(Exception, match="bogus"):  # the check is real: an unknown key is refused
        validate_config(prepare_config({**config, "bogus": 1}))
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert config["max_workers"] == config["available_node_types"]["gpu_worker"]["max_workers"]
