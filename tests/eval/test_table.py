"""`crosspoint eval table`: the README accuracy table is rendered from eval JSON, nothing typed by hand."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from crosspoint.eval.cli import app
from crosspoint.eval.table import END, START, render, replace_section


def _svm(acc: float) -> dict:
    res = {"unscaled": {"test_accuracy": acc}, "scaled": {"test_accuracy": acc + 0.01}}
    return {**res, "best": {"variant": "scaled", "test_accuracy": acc + 0.01}}


SVM = {
    "data": {"train": 9843, "test": 2336},
    "protocol": {"num_points": 1024, "C_grid": [0.01, 0.1], "val_fraction": 0.1},
    "results": {"pretrained": _svm(0.8512), "random": _svm(0.7)},
}
SETTINGS = ("5way_10shot", "5way_20shot", "10way_10shot", "10way_20shot")
FEWSHOT = {
    "protocol": {"pool_split": "train", "queries_per_class": 20, "runs": 10},
    "results": {
        "pretrained": {s: {"mean": 90.04, "std": 3.26} for s in SETTINGS},
        "random": {s: {"mean": 80.0, "std": 5.0} for s in SETTINGS},
    },
}
PARTSEG = {
    "results": {"shapenetpart": {"shapes": 4, "instance_miou": 0.498}},
    "random": {"shapenetpart": {"shapes": 4, "instance_miou": 0.2}},
}


CLASSIFY = {"version": 3, "top1": 0.9121, "per_class": {f"c{i}": {} for i in range(40)}}


def test_rows_carry_the_measured_numbers_next_to_random_and_the_paper() -> None:
    lines = render(SVM, FEWSHOT, PARTSEG, CLASSIFY).splitlines()
    assert "| served `classify` v3 top-1, test (ONNX on prepared points) | 91.2 | 2.5 (chance) | - |" in lines
    assert "| linear SVM, test (unscaled, the reference) | 85.1 | 70.0 | 91.2 |" in lines
    assert "| linear SVM, test (variant chosen on validation) | 86.1 | 71.0 | 91.2 |" in lines
    assert "| few-shot 10-way 20-shot | 90.0 ± 3.3 | 80.0 ± 5.0 | 87.9 |" in lines
    assert "| part seg instance mIoU, real ShapeNetPart test (4 shapes) | 49.8 | 20.0 | 85.5 |" in lines
    assert any("9,843 train / 2,336 test" in line for line in lines)


def test_cli_rewrites_only_the_marked_section(tmp_path: Path) -> None:
    paths = {}
    for name, doc in (("svm", SVM), ("fewshot", FEWSHOT), ("partseg", PARTSEG)):
        paths[name] = tmp_path / f"{name}.json"
        paths[name].write_text(json.dumps(doc))
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n{START}\nold table\n{END}\nafter\n")
    args = ["table", *(f"--{k}={v}" for k, v in paths.items())]
    result = CliRunner().invoke(app, [*args, "--readme", str(readme)])
    assert result.exit_code == 0, result.output
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# title\n") and text.endswith(f"{END}\nafter\n")
    assert replace_section(text, render(SVM, FEWSHOT, PARTSEG)) == text  # idempotent
    printed = CliRunner().invoke(app, args)
    assert printed.stdout.strip() == render(SVM, FEWSHOT, PARTSEG).strip()
