"""Several browser sessions share one LiveRouter (one model switched between experts): concurrent Playground
queries under different experts must equal the serial results."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest


@pytest.fixture(scope="module")
def router(request, trains):
    given = os.environ.get("EXPLORER_TEST_WORKSPACE")
    if given:
        from explorer.workspace import Workspace

        ws = Workspace(given)
    else:
        ws = request.getfixturevalue("sample_workspace")
    from explorer.live import LiveRouter

    return LiveRouter.open(ws)


QUERIES = [
    # (text, choice, dataset): five different experts (one the base model, one a merge of two)
    ("my kitchen tap keeps dripping after I turn it off", "homefix", "homefix"),
    ("reverse the order of the words in a sentence", "pycode", "pycode"),
    ("the room spins when I turn over in bed", None, "symptoms"),
    ("stagflation", "glossary", "glossary"),
    ("Zoos should close because animals suffer in captivity.", {"debate": 0.6, "evidence": 0.4}, "debate"),
]


def test_five_concurrent_queries_equal_serial(router):
    serial = [router.search(text, choice, dataset, k=10) for text, choice, dataset in QUERIES]
    # different experts really give different results (otherwise the test would prove nothing)
    first = router.search(QUERIES[0][0], None, QUERIES[0][2], k=10)
    assert not np.allclose(first["score"].to_numpy(), serial[0]["score"].to_numpy())

    for _ in range(3):
        results: dict[int, object] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(len(QUERIES))

        def work(i, text, choice, dataset):
            try:
                barrier.wait()
                results[i] = router.search(text, choice, dataset, k=10)
            except BaseException as err:  # noqa: BLE001 - reported below
                errors.append(err)

        threads = [threading.Thread(target=work, args=(i, *q)) for i, q in enumerate(QUERIES)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors
        for i, expected in enumerate(serial):
            got = results[i]
            assert got["doc_id"].tolist() == expected["doc_id"].tolist(), QUERIES[i]
            np.testing.assert_allclose(got["score"].to_numpy(), expected["score"].to_numpy(), rtol=1e-5, atol=1e-6)


def test_concurrent_routes_equal_serial(router):
    texts = [q[0] for q in QUERIES]
    serial = [router.route(t) for t in texts]
    results: dict[int, object] = {}
    threads = [threading.Thread(target=lambda i=i, t=t: results.__setitem__(i, router.route(t)))
               for i, t in enumerate(texts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for i, expected in enumerate(serial):
        for name, dec in expected.decisions.items():
            np.testing.assert_allclose(results[i].decisions[name].weights, dec.weights, atol=1e-6)
        np.testing.assert_allclose(results[i].pilot_similarity["similarity"], expected.pilot_similarity["similarity"],
                                   atol=1e-5)
