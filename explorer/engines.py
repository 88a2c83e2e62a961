"""Where the corpus-encoding stage runs: in this process (local), or on a Ray cluster (an optional extra).

Both write the same cache: the chunked, resumable parts of explorer.chunked, one call of `encode` per chunk, so
the rest of the build does not know which engine made them. On Ray, each chunk is a Ray Data pipeline whose
`map_batches` runs on actors that each hold the base model (`gpus_per_actor` GPUs each; 0 = CPU), in order.

    pip install ".[ray]"          # ray[data]; the default install has no Ray
    [compute]
    engine = "ray"
    address = "ray://head:10001"  # an existing cluster; "" starts a local Ray instance
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .settings import Param

ENGINES = ("local", "ray")
COMPUTE_PARAMS = (
    Param("engine", str, "local", "where the corpora are encoded: this process, or Ray (pip install \".[ray]\")",
          choices=ENGINES),
    Param("address", str, "", 'engine = "ray": the cluster address (e.g. "ray://head:10001" or "auto"); "" starts a '
          "local Ray instance"),
    Param("actors", int, 2, 'engine = "ray": encoding actors, each holding the base model', min=1, max=10_000),
    Param("gpus_per_actor", float, 0.0, 'engine = "ray": GPUs each actor holds (0: CPU)', min=0, max=64),
    Param("batch_size", int, 256, 'engine = "ray": passages per map_batches call', min=1, max=100_000),
    Param("workers", int, 0, "CPU builds: processes that encode the corpora and train the experts at once (each "
          "expert then encodes the queries), each with an equal share of the cores' threads; 0: one per core, at most "
          "4; 1: everything in the build's own process; never more than the cores", min=0, max=64),
    Param("devices", list, [], 'engine = "local": devices the corpus pass runs on at once, one process each (e.g. '
          '["cuda:0", "cuda:1"]); empty: every GPU when [model] device is cuda and several are visible, else one',
          item=str),
)


def corpus_devices(asked: list[str], device: str) -> list[str]:
    """The devices of the local corpus pass: the ones asked for, or every visible GPU when the build runs on cuda
    and there are several; one device (or none asked) means this process alone."""
    if asked:
        return list(asked)
    if device != "cuda":
        return []
    import torch

    n = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(n)] if n > 1 else []


def ray_problem() -> str | None:
    """Why engine = "ray" cannot run here, or None: checked with the config, before any model loads."""
    try:
        import ray.data  # noqa: F401  (ray itself, and its Data library)
    except ImportError:
        return 'Ray is not installed (fix: pip install ".[ray]", or set engine = "local")'
    return None


class _EncodeActor:
    """A Ray actor holding the base encoder; encodes batches of passages."""

    def __init__(self, base: str, max_seq_length: int, device: str, batch_size: int):
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from .encoders import Encoder

        self.encoder = Encoder(base, device=device, max_seq_length=max_seq_length, batch_size=batch_size)

    def __call__(self, batch: dict) -> dict:
        return {"emb": self.encoder.encode(list(batch["text"]))}


def ray_encoder(base: str, max_seq_length: int, compute: dict, encoder_batch: int = 64) -> Callable:
    """An `encode(texts) -> (n, d) float32` that runs on Ray (connecting on first use), for encode_chunked."""
    import ray

    def encode(texts: list[str]) -> np.ndarray:
        if not ray.is_initialized():
            ray.init(address=compute["address"] or None, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": {"HF_HUB_OFFLINE": "1"}})
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # rows come back in the corpus order
        gpus = float(compute["gpus_per_actor"])
        out = ray.data.from_items([{"text": t} for t in texts]).map_batches(
            _EncodeActor, fn_constructor_kwargs={"base": base, "max_seq_length": max_seq_length,
                                                 "device": "cuda" if gpus else "cpu", "batch_size": encoder_batch},
            batch_size=int(compute["batch_size"]), concurrency=int(compute["actors"]), num_gpus=gpus,
            batch_format="numpy")
        parts = [b["emb"] for b in out.iter_batches(batch_size=None, batch_format="numpy")]
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    return encode
