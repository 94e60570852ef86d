"""README's command-line examples that run offline in seconds work as written (on the shipped example input)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
from pathlib import Path

from moalign.cli import main

ROOT = Path(__file__).resolve().parents[1]


def readme_commands(verb: str) -> list[list[str]]:
    lines = re.findall(rf"^moalign {verb} (.+?)(?:\s+#.*)?$", (ROOT / "README.md").read_text(), flags=re.M)
    return [shlex.split(line) for line in lines]


def test_score_then_select_as_written(tmp_path, monkeypatch):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    (score,), (select,) = readme_commands("score"), readme_commands("select")
    assert main(["score", *score]) == 0
    assert main(["select", *select]) == 0
    scored = [json.loads(line) for line in Path("scored.jsonl").read_text().splitlines()]
    assert len(scored) == 16 and {"score.positivity", "score.brevity"} <= set(scored[0])
    selected = [json.loads(line) for line in Path("selected.jsonl").read_text().splitlines()]
    assert len(selected) == 5 and all(row["pareto_layer"] in (0, 1, 2) for row in selected)
    assert Path("stats.json").is_file()
