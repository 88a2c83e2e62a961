"""A CPU build's corpora and experts in forked worker processes (explorer.workers): the same workspace as a build in
one process, every item logged as computed in this build, errors raised in the build with their own type."""

from __future__ import annotations

import os

import numpy as np
import pytest

from explorer.build import build
from explorer.config import ConfigError
from explorer.workers import MAX_WORKERS, cores, run_in_workers, worker_count

from .conftest import two_domain_config

EXPERTS = "".join(f'[[experts]]\nname = "{n}"\nsources = [{{dataset = "{n}", source = "qrels", max_pairs = 32}}]\n'
                  f'[[experts]]\nname = "prefix-{n}"\nkind = "prefix"\ncandidate = false\nvirtual_tokens = 4\n'
                  f'sources = [{{dataset = "{n}", source = "qrels", max_pairs = 32}}]\n' for n in ("homefix", "pycode"))


def test_worker_count_follows_the_machine_and_the_setting(monkeypatch):
    expected = min(cores(), MAX_WORKERS)
    assert worker_count(10, 0, "cpu") == (expected if expected >= 2 else 0)
    monkeypatch.setattr("explorer.workers.cores", lambda: 8)
    assert worker_count(10, 0, "cuda") == 0  # never forks a process that holds a GPU
    assert worker_count(1, 0, "cpu") == 0  # one item: in the build's own process, with every thread
    assert worker_count(10, 1, "cpu") == 0  # asked for no workers
    assert worker_count(10, 3, "cpu") == 3 and worker_count(2, 3, "cpu") == 2
    assert worker_count(10, 0, "cpu") == MAX_WORKERS
    monkeypatch.setattr("explorer.workers.cores", lambda: 2)
    assert worker_count(10, 64, "cpu") == 2 and worker_count(10, 0, "cpu") == 2  # never more than the cores
    monkeypatch.setattr("explorer.workers.cores", lambda: 1)
    assert worker_count(10, 4, "cpu") == 0  # one core: no worker at all


def test_cores_follow_a_cgroup_quota(monkeypatch):
    import explorer.workers as workers

    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(workers, "_cgroup_quota", lambda: 3)
    assert workers.cores() == 3
    monkeypatch.setattr(workers, "_cgroup_quota", lambda: None)
    assert workers.cores() == 16


def test_items_run_in_other_processes_with_a_share_of_the_threads_and_errors_keep_their_type():
    import torch

    seen = {}
    run_in_workers(lambda i: (os.getpid(), i * i, torch.get_num_threads()), [1, 2, 3, 4], 2,
                   lambda i, r: seen.__setitem__(i, r))
    assert {i: v for i, (_, v, _) in seen.items()} == {0: 0, 1: 1, 2: 4, 3: 9}
    assert os.getpid() not in {pid for pid, _, _ in seen.values()}
    assert {t for _, _, t in seen.values()} == {max(1, cores() // 2)}

    def refuse(i):
        if i == 2:
            raise ConfigError("a config problem", ["the problem"])
        return i

    with pytest.raises(ConfigError, match="a config problem") as err:
        run_in_workers(refuse, range(4), 2, lambda i, r: None)
    assert "in worker process" in "\n".join(getattr(err.value, "__notes__", []))


def test_a_worker_that_dies_stops_the_work_instead_of_hanging():
    from concurrent.futures.process import BrokenProcessPool

    def die(i):
        if i == 1:
            os.kill(os.getpid(), 9)  # as the out-of-memory killer would
        return i

    with pytest.raises(BrokenProcessPool):
        run_in_workers(die, range(4), 2, lambda i, r: None)


def _build(tmp_path, name: str, workers: int):
    config = two_domain_config(tmp_path / f"{name}.toml", tmp_path / f"cache-{name}",
                               tables=f"[compute]\nworkers = {workers}\n", experts=EXPERTS)
    return build(config, tmp_path / name, echo=lambda _: None, progress=False)


def test_a_build_in_workers_equals_one_in_a_single_process(tmp_path, monkeypatch, trains):
    import torch

    monkeypatch.setattr("explorer.workers.cores", lambda: 2)  # each of 2 workers: one thread, on any machine
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread everywhere (as each of two workers has on 2 cores): the same arithmetic
    try:
        serial = _build(tmp_path, "serial", workers=1)
        forked = _build(tmp_path, "forked", workers=2)
    finally:
        torch.set_num_threads(threads)
    for table in ("metrics", "strategy_metrics", "runs", "decisions"):
        assert getattr(forked, table).equals(getattr(serial, table)), table
    for i in range(len(serial.encoders)):
        name = f"enc{i:02d}.npy"
        assert np.array_equal(np.load(forked.path / "embeddings" / name), np.load(serial.path / "embeddings" / name))
    for name in ("homefix", "prefix-pycode"):
        a, b = (ws.path / "experts" / name / "adapter_model.safetensors" for ws in (serial, forked))
        assert a.read_bytes() == b.read_bytes(), name
    stages = forked.manifest["stages"]
    assert not any(e["cached"] for k, e in stages.items() if k.startswith(("docs:", "expert:", "queries:")))
    assert all(stages[f"expert:{e}"]["seconds"] > 0 for e in forked.encoders[1:])
    assert set(forked.manifest["stage_seconds"]) >= {"corpora", "experts", "queries", "write"}
    again = _build(tmp_path, "forked", workers=2)  # a rebuild: everything from the cache, nothing forked
    assert all(e["cached"] for k, e in again.manifest["stages"].items() if k.startswith(("expert:", "queries:")))
    assert again.metrics.equals(forked.metrics)


def test_the_first_prefix_expert_does_not_depend_on_the_expert_used_before_it(trains):
    """A prefix starts from the keys and values the base model gives real tokens, whichever LoRA expert was active
    last (it used to take that expert's: then the first prefix of a build depended on the training order)."""
    import torch

    from explorer.encoders import Encoder

    def first_prefix(after_lora: bool) -> torch.Tensor:
        enc = Encoder()
        if after_lora:
            enc.add_expert("lora", "lora", {"target_modules": ["query", "key", "value"]})
            with torch.no_grad():
                for n, p in enc.model.named_parameters():
                    if "lora_B" in n:
                        p.normal_()  # a trained expert: its keys and values differ from the base model's
            enc.encode(["a query under the expert"] * 9, expert="lora")
        enc.add_expert("ddr", "prefix", {"virtual_tokens": 4})
        return enc.experts["ddr"]._table("ddr").weight.detach().clone()

    assert torch.equal(first_prefix(after_lora=True), first_prefix(after_lora=False))
