"""The `explorer` command: train writes a loadable peft folder; errors are one clear line, not a traceback."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.cli import main
from explorer.encoders import Encoder

from .conftest import ROOT


@pytest.mark.slow
def test_train_writes_a_peft_folder_that_loads_as_an_expert(tmp_path, capsys):
    out = tmp_path / "hf"
    assert main(["train", str(ROOT / "sample_data" / "homefix"), "--name", "hf", "--out", str(out),
                 "--epochs", "1", "--holdout", "0"]) == 0
    assert "Trained lora expert 'hf'" in (printed := capsys.readouterr().out) and f"saved it to {out}" in printed
    assert json.loads((out / "adapter_config.json").read_text())["peft_type"] == "LORA"
    enc = Encoder()
    enc.load_expert("hf", out)
    texts = ["my kitchen tap keeps dripping", "radiator cold at the top"]
    assert np.abs(enc.encode(texts, "hf") - enc.encode(texts)).max() > 1e-4


def test_train_with_an_unknown_kind_names_the_registered_kinds(tmp_path, capsys):
    from explorer.experts import EXPERT_KINDS

    out = tmp_path / "x"
    assert main(["train", str(ROOT / "sample_data" / "homefix"), "--name", "x", "--out", str(out),
                 "--kind", "adapterfusion"]) == 2
    err = capsys.readouterr().err
    assert "'adapterfusion' is unknown" in err and all(kind in err for kind in EXPERT_KINDS)
    assert not out.exists()


def test_eval_of_a_folder_that_is_not_a_workspace(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a workspace" in err and "fix:" in err
