"""load_task: the embedded task and public-dataset tasks (on local files in the datasets' layouts)."""

from __future__ import annotations

import importlib.util

import pytest

from moalign.config import TaskConfig
from moalign.data import load_task
from moalign.data.templates import format_prompt

from .conftest import HELPSTEER_ROWS, PKU_ROWS, write_jsonl

HAS_EMBEDDED = importlib.util.find_spec("moalign.data.embedded.builder") is not None


def test_source_task_train_and_test(source_files, tmp_path):
    test_file = write_jsonl(tmp_path / "pku_test.jsonl", [dict(PKU_ROWS[1]), dict(PKU_ROWS[0])])
    task = TaskConfig(name="safety", objectives=["better", "safer"], source="pku-saferlhf",
                      train_data=source_files["pku-saferlhf"], test_prompts=test_file, prompt_template=None,
                      num_test_prompts=1)
    data = load_task(task)
    assert len(data.pairs) == 4 and len(data.responses) == 4
    assert data.test_prompts == [format_prompt("Say something nice.", "beaver")]  # first distinct test prompt
    assert data.golden == ["You are great."]


def test_source_task_uses_train_data_test_split_and_template(tmp_path):
    import datasets

    rows = datasets.Dataset.from_list(HELPSTEER_ROWS)
    datasets.DatasetDict({"train": rows, "test": rows}).save_to_disk(str(tmp_path / "hs"))
    task = TaskConfig(name="hs", source="helpsteer", train_data=str(tmp_path / "hs"), max_train_samples=2,
                      prompt_template="beaver", num_test_prompts=5)
    data = load_task(task)
    assert len(data.responses) == 2  # first two rows
    assert data.responses.prompts[0] == format_prompt("Explain rain.", "beaver")
    assert data.test_prompts == [format_prompt("Explain rain.", "beaver"), format_prompt("Name a colour.", "beaver")]
    assert data.golden == ["Clouds condense water vapour into drops that fall.", "Blue."]


def test_task_errors(source_files):
    with pytest.raises(ValueError, match="task.source is not set"):
        load_task(TaskConfig(name="mine", train_data=source_files["helpsteer"]))
    with pytest.raises(ValueError, match="task.train_data is not set"):
        load_task(TaskConfig(name="mine", source="helpsteer"))
    with pytest.raises(ValueError, match="num_test_prompts"):
        load_task(TaskConfig(name="embedded", num_test_prompts=0))


@pytest.mark.skipif(not HAS_EMBEDDED, reason="the embedded task builder (helper C2) is not in the tree yet")
def test_embedded_task():
    data = load_task(TaskConfig(name="embedded", num_test_prompts=5, max_train_samples=50), seed=0)
    assert len(data.responses) == 50 and data.responses.scores.shape == (50, 0) and data.pairs is None
    assert len(data.test_prompts) == 5 and len(data.golden) == 5
    assert all(p.endswith("Assistant:") for p in data.test_prompts)
    assert not set(data.test_prompts) & set(data.responses.prompts)  # held out
    again = load_task(TaskConfig(name="embedded", num_test_prompts=5, max_train_samples=50), seed=0)
    assert again.responses.responses == data.responses.responses  # a pure function of the seed
