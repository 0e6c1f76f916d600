"""The command line's main job: the demo grid search, its table, plot and JSON."""

import io
import json
import subprocess
import sys

import pytest

from conftest import SHARED_DATA
from latticeprune.cli import build_parser, run_demo

SMALL = ["--epochs", "2", "--hidden-size", "8", "--cv", "2"]


def test_demo_prints_the_table_and_writes_plot_and_json(tmp_path):
    out = io.StringIO()
    args = build_parser().parse_args(["demo", *SMALL, "--sparsities", "0.5", "0.9",
                                      "--output", str(tmp_path)])
    rows = run_demo(args, out=out)
    text = out.getvalue()
    assert "1347 train / 450 test" in text
    assert "grid search: 8 candidates x 2 folds = 16 fits" in text
    methods = {row["method"] for row in rows}
    assert {"dense", "lattice binary", "lattice continuous", "magnitude",
            "moduli torus"} <= methods
    assert sum(row["sparsity"] == 0.9 for row in rows) == 4
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows, default=str))
    for row in rows:  # every number in the JSON is the one printed
        for value in (row["cv accuracy"], row.get("test accuracy", "")):
            assert str(value) in text
    assert (tmp_path / "accuracy_vs_sparsity.png").stat().st_size > 1000


def test_module_entry_point_and_errors():
    result = subprocess.run([sys.executable, "-m", "latticeprune", "demo", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--sparsities" in result.stdout
    with pytest.raises(SystemExit, match="--data PATH"):
        run_demo(build_parser().parse_args(["demo", "--dataset", "mnist"]))


@pytest.mark.skipif(not (SHARED_DATA / "mnist-10k").exists(), reason="shared MNIST not present")
def test_demo_on_mnist_folder(tmp_path):
    out = io.StringIO()
    args = build_parser().parse_args(["demo", "--dataset", "mnist", "--data",
                                      str(SHARED_DATA / "mnist-10k"), "--epochs", "1",
                                      "--hidden-size", "8", "--cv", "2", "--sparsities", "0.9",
                                      "--output", str(tmp_path)])
    run_demo(args, out=out)
    assert "8000 train / 2000 test sequences of 28 steps x 28 features" in out.getvalue()
    assert (tmp_path / "results.json").exists()
