"""The corpus-encoding stage on Ray (the optional extra): the same embeddings as the local path, written to the
same cache, on a local Ray instance with two CPU actors. CI installs the extra (make test), so these fail rather
than skip when Ray is missing."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.config import ConfigError, load_config
from tests.conftest import ROOT, two_domain_config

COMPUTE = '[compute]\nengine = "ray"\nactors = 2\nbatch_size = 32\n'


@pytest.fixture(scope="module")
def local_ray(trains):
    import ray

    yield ray
    ray.shutdown()


def test_ray_encodes_as_the_local_encoder_does(local_ray, tmp_path):
    from explorer.build import build
    from explorer.data import load_beir
    from explorer.encoders import Encoder

    said: list[str] = []
    ws = build(two_domain_config(tmp_path / "ray.toml", tmp_path / "cache", COMPUTE), tmp_path / "ws",
               progress=False, echo=said.append)
    assert local_ray.is_initialized()  # the corpora went through Ray
    assert ws.manifest["compute"]["engine"] == "ray" and "address" not in ws.manifest["compute"]
    assert any("chunk 1/1: encoded" in line for line in said)
    encoder = Encoder("bundled", max_seq_length=256)
    for name in ("homefix", "pycode"):
        ds = load_beir(ROOT / "sample_data" / name)
        np.testing.assert_allclose(np.load(ws.path / "datasets" / name / "doc_emb.npy"),
                                   encoder.encode(ds.corpus.passages()), rtol=0, atol=1e-5)


def test_an_unknown_engine_is_refused_before_any_model(tmp_path):
    config = two_domain_config(tmp_path / "bad.toml", tmp_path / "cache", '[compute]\nengine = "spark"\n')
    with pytest.raises(ConfigError) as err:
        load_config(config)
    assert '[compute] `engine` "spark" is not one of "local" / "ray"' in str(err.value)


def test_engine_ray_without_ray_installed_says_how_to_install_it(tmp_path, monkeypatch):
    import explorer.config as config

    monkeypatch.setattr(config, "ray_problem", lambda: 'Ray is not installed (fix: pip install ".[ray]", or set '
                        'engine = "local")')
    with pytest.raises(ConfigError) as err:
        load_config(two_domain_config(tmp_path / "ray.toml", tmp_path / "cache", COMPUTE))
    assert 'Ray is not installed (fix: pip install ".[ray]"' in str(err.value)


def test_the_corpus_pass_on_several_devices_equals_one_process(trains):
    """sentence-transformers' multi-process pool (one process per device: every GPU of a machine; here two CPU
    processes) gives the embeddings one process gives, in order; and it refuses to run once experts are loaded."""
    from explorer.data import load_beir
    from explorer.encoders import Encoder
    from explorer.engines import corpus_devices

    texts = load_beir(ROOT / "sample_data" / "pycode").corpus.passages()
    encoder = Encoder("bundled", max_seq_length=256)
    np.testing.assert_allclose(encoder.encode_on(texts, ["cpu", "cpu"]), encoder.encode(texts), rtol=0, atol=1e-5)
    assert corpus_devices(["cuda:0", "cuda:1"], "cpu") == ["cuda:0", "cuda:1"]  # as asked
    assert corpus_devices([], "cpu") == []  # one process
    encoder.add_expert("x")
    with pytest.raises(RuntimeError, match="base model only"):
        encoder.encode_on(texts, ["cpu", "cpu"])


def test_a_build_runs_its_corpus_pass_on_the_devices_given(tmp_path, trains, monkeypatch):
    from explorer.build import build
    from explorer.data import load_beir
    from explorer.encoders import Encoder

    seen = []
    real = Encoder.encode_on
    monkeypatch.setattr(Encoder, "encode_on", lambda self, texts, devices, **kw: seen.append(list(devices)) or real(
        self, texts, devices, **kw))
    config = two_domain_config(tmp_path / "devices.toml", tmp_path / "cache",
                               '[compute]\ndevices = ["cpu", "cpu"]\n')
    ws = build(config, tmp_path / "ws", progress=False)
    assert ws.manifest["compute"]["devices"] == ["cpu", "cpu"]
    assert seen == [["cpu", "cpu"]] * 2  # both corpora went through the pool
    texts = load_beir(ROOT / "sample_data" / "homefix").corpus.passages()
    np.testing.assert_allclose(np.load(ws.path / "datasets" / "homefix" / "doc_emb.npy"),
                               Encoder("bundled", max_seq_length=256).encode(texts), rtol=0, atol=1e-5)


def test_half_precision_moves_embeddings_little_and_runs_in_one_process(trains, tmp_path):
    """precision = "float16": the embedding passes under autocast stay within a small distance of float32 (the
    ranking tolerance is measured in bench.precision); training is untouched; it is refused where a pass would
    leave this process (Ray, several devices) and for an unknown precision."""
    from explorer.data import load_beir
    from explorer.encoders import Encoder

    texts = load_beir(ROOT / "sample_data" / "pycode").corpus.passages()
    full, half = Encoder(), Encoder(precision="float16")
    a, b = full.encode(texts), half.encode(texts)
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-3)
    assert 0 < np.abs(a - b).max() < 5e-3  # it did run in half precision, and moved little
    assert np.min(np.sum(a * b, axis=1)) > 0.999
    assert np.array_equal(half.encode(texts[:3]), half.encode(texts[:3]))  # a live query too, deterministic
    with pytest.raises(ValueError, match="precision = 'float8'"):
        Encoder(precision="float8")
    for extra, message in ((COMPUTE, '"float16" is not supported with [compute] engine = "ray"'),
                           ('[compute]\ndevices = ["cpu", "cpu"]\n', '"float16" runs on one device')):
        config = two_domain_config(tmp_path / "half.toml", tmp_path / "cache",
                                   '[model]\nprecision = "float16"\n' + extra)
        with pytest.raises(ConfigError) as err:
            load_config(config)
        assert message in str(err.value)
    config = two_domain_config(tmp_path / "half.toml", tmp_path / "cache", '[model]\nprecision = "float16"\n')
    assert load_config(config).precision == "float16"
