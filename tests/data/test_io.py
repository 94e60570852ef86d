"""Round trips of scored responses and pairs through JSONL, JSON, Parquet, dataset folders and Datasets."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest

from moalign.data import (
    PairSet,
    ScoredSet,
    load_pairs,
    load_scored,
    pairs_to_dataset,
    save_pairs,
    save_scored,
    scored_to_dataset,
)

FORMATS = ["set.jsonl", "set.json", "set.parquet", "set_folder"]


def _scored() -> ScoredSet:
    return ScoredSet(
        prompts=["\n\nHuman: héllo {x}\n\nAssistant:", "p2", "p2"],
        responses=["ça va ✓", "line\nbreak", ""],
        scores=np.array([[0.1, -2.5], [1e-12, 3.0], [7.0, 0.0]]),
        objectives=["helpful", "harmless.v2"],
        ids=["a", "b", "c"],
    )


def _pairs(with_scores: bool = True) -> PairSet:
    return PairSet(
        prompts=["p", "p", "q"],
        chosen=["good", "safe", "x"],
        rejected=["bad", "risky", "y"],
        objective=["helpful", "harmless", "helpful"],
        chosen_scores=np.array([[1.0, math.nan], [0.5, 2.0], [3.0, 1.0]]) if with_scores else None,
        rejected_scores=np.array([[0.0, math.nan], [0.7, -1.0], [2.0, 1.0]]) if with_scores else None,
        objectives=["helpful", "harmless"],
        ids=["1", "2", "3"],
    )


def _assert_scored_equal(a: ScoredSet, b: ScoredSet) -> None:
    assert (a.prompts, a.responses, a.objectives, a.ids) == (b.prompts, b.responses, b.objectives, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


def _assert_pairs_equal(a: PairSet, b: PairSet) -> None:
    assert (a.prompts, a.chosen, a.rejected, a.objective, a.objectives, a.ids) == (
        b.prompts, b.chosen, b.rejected, b.objective, b.objectives, b.ids)
    for x, y in ((a.chosen_scores, b.chosen_scores), (a.rejected_scores, b.rejected_scores)):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_array_equal(x, y)  # NaN == NaN here: unknown stays unknown


@pytest.mark.parametrize("name", FORMATS)
def test_scored_round_trip(tmp_path, name):
    original = _scored()
    path = save_scored(original, tmp_path / name)
    _assert_scored_equal(load_scored(path), original)
    _assert_scored_equal(original, _scored())  # saving did not touch the records


@pytest.mark.parametrize("name", FORMATS)
def test_pairs_round_trip(tmp_path, name):
    for with_scores in (True, False):
        original = _pairs(with_scores)
        _assert_pairs_equal(load_pairs(save_pairs(original, tmp_path / name, overwrite=True)), original)


def test_in_memory_datasets_round_trip():
    _assert_scored_equal(load_scored(scored_to_dataset(_scored())), _scored())
    dataset = pairs_to_dataset(_pairs())
    assert {"prompt", "chosen", "rejected"} <= set(dataset.column_names)  # what TRL's DPO reads
    _assert_pairs_equal(load_pairs(dataset), _pairs())


def test_unscored_set_round_trips_with_no_objectives(tmp_path):
    unscored = ScoredSet(prompts=["p"], responses=["r"], scores=np.zeros((1, 0)), objectives=[])
    back = load_scored(save_scored(unscored, tmp_path / "u.parquet"))
    assert back.objectives == [] and back.scores.shape == (1, 0)


def test_objectives_select_and_order_columns(tmp_path):
    path = save_scored(_scored(), tmp_path / "s.jsonl")
    back = load_scored(path, objectives=["harmless.v2", "helpful"])
    assert back.objectives == ["harmless.v2", "helpful"]
    np.testing.assert_array_equal(back.scores, _scored().scores[:, ::-1])


def test_pairs_objectives_reorder_scores(tmp_path):
    back = load_pairs(save_pairs(_pairs(), tmp_path / "p.jsonl"), objectives=["harmless", "helpful"])
    np.testing.assert_array_equal(back.chosen_scores[1], [2.0, 0.5])


def test_pairs_without_objective_column_take_the_single_objective(tmp_path):
    path = tmp_path / "dpo.jsonl"
    path.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n', encoding="utf-8")
    assert load_pairs(path, objectives=["helpful"]).objective == ["helpful"]


def test_alternative_scores_column_layouts(tmp_path):
    path = tmp_path / "vec.jsonl"
    path.write_text('{"prompt": "p", "response": "r", "scores": [1, 2]}\n', encoding="utf-8")
    np.testing.assert_array_equal(load_scored(path, objectives=["a", "b"]).scores, [[1.0, 2.0]])
    path.write_text('{"prompt": "p", "response": "r", "scores": {"b": 2, "a": 1}}\n', encoding="utf-8")
    back = load_scored(path)
    assert back.objectives == ["b", "a"]
    np.testing.assert_array_equal(back.scores, [[2.0, 1.0]])


def test_rows_without_ids_are_numbered_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "noid.jsonl"
    path.write_text('\n{"prompt": "p", "response": "a"}\n\n{"prompt": "p", "response": "b"}\n', encoding="utf-8")
    assert load_scored(path).ids == ["0", "1"]


def test_integer_ids_become_strings(tmp_path):
    path = tmp_path / "intid.jsonl"
    path.write_text('{"id": 7, "prompt": "p", "response": "a", "score.x": 1}\n', encoding="utf-8")
    assert load_scored(path).ids == ["7"]


def test_loading_leaves_the_file_unchanged_and_writes_are_atomic(tmp_path):
    path = save_scored(_scored(), tmp_path / "s.jsonl")
    before = path.read_bytes()
    load_scored(path, objectives=["helpful"])
    assert path.read_bytes() == before
    bad = ScoredSet(prompts=["p"], responses=[object()], scores=[[1.0]], objectives=["x"])  # not JSON-writable
    with pytest.raises(TypeError):
        save_scored(bad, path, overwrite=True)
    assert path.read_bytes() == before  # the failed write did not touch the old file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.jsonl"]  # and left no temporary file behind


def test_parquet_overwrite_replaces_whole_file(tmp_path):
    path = tmp_path / "s.parquet"
    save_scored(_scored(), path)
    save_scored(_scored().subset(np.array([0])), path, overwrite=True)
    assert len(load_scored(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet"]


def test_saving_non_finite_scores_is_refused(tmp_path):
    scored = _scored()
    scored.scores[1, 0] = math.nan
    with pytest.raises(ValueError, match="row 1 .id 'b'. for objective 'helpful' is nan"):
        save_scored(scored, tmp_path / "s.jsonl")
    assert not list(tmp_path.iterdir())


def _tree(root) -> dict:
    """Every file under ``root`` with its bytes, every folder as None: a snapshot to compare."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("existing", ["file", "folder"])
def test_saving_refuses_an_existing_file_or_folder_and_leaves_it_untouched(tmp_path, name, existing):
    target = tmp_path / name
    if existing == "file":
        target.write_bytes(b"precious \x00 bytes")
    else:
        target.mkdir()
        (target / "notes.txt").write_text("do not delete")
    before = _tree(tmp_path)
    with pytest.raises(FileExistsError, match=f"{name} already exists \\(a {existing}\\).*overwrite=True"):
        save_scored(_scored(), target)
    with pytest.raises(FileExistsError, match="already exists"):
        save_pairs(_pairs(), target)
    assert _tree(tmp_path) == before  # nothing replaced, nothing left behind


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("existing", ["file", "folder"])
def test_overwrite_replaces_a_file_or_folder_and_leaves_no_leftovers(tmp_path, name, existing):
    target = tmp_path / name
    if existing == "file":
        target.write_text("old")
    else:
        target.mkdir()
        (target / "old.txt").write_text("old")
    _assert_scored_equal(load_scored(save_scored(_scored(), target, overwrite=True)), _scored())
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file and no renamed-aside old entry


def test_a_failed_folder_replacement_puts_the_old_entry_back(tmp_path, monkeypatch):
    from moalign import io_utils

    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    real, calls = os.replace, []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the old folder is aside; the new one fails to move in
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(io_utils.os, "replace", flaky)
    with pytest.raises(OSError, match="No space"):
        with io_utils.atomic_dir(target) as tmp:
            (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and (target / "keep.txt").read_text() == "old"


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_get_the_permissions_of_the_umask_not_0600(tmp_path, mask):
    old = os.umask(mask)
    try:
        paths = [save_scored(_scored(), tmp_path / n) for n in ("s.jsonl", "s.parquet", "folder")]
        save_pairs(_pairs(), tmp_path / "p.jsonl")
    finally:
        os.umask(old)
    for path in [*paths[:2], tmp_path / "p.jsonl", *paths[2].iterdir()]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path
    assert stat.S_IMODE(paths[2].stat().st_mode) == 0o777 & ~mask


def test_extra_columns_keep_their_own_type_in_parquet(tmp_path):
    import pyarrow.parquet as pq

    from moalign.data.io import scored_columns, write_columns

    columns = {**scored_columns(_scored()), "pareto_layer": [0, 1, 0]}
    path = write_columns(columns, tmp_path / "f.parquet")
    table = pq.read_table(path)
    assert table.column("pareto_layer").to_pylist() == [0, 1, 0] and str(table.schema.field("pareto_layer").type) == "int64"
    _assert_scored_equal(load_scored(path), _scored())


def test_did_you_mean_only_suggests_a_column_of_the_same_kind(tmp_path):
    row = {"prompt": "p", "rejected": "b", "objective": "a", "chosen_score.a": 1.0, "rejected_score.a": 0.0}
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(ValueError, match="missing column 'chosen'; add a 'chosen' column") as err:
        load_pairs(path)
    assert "did you mean" not in str(err.value)  # renaming chosen_score.a to chosen would corrupt the data
    path.write_text(json.dumps({**row, "chosn": "a"}) + "\n")
    with pytest.raises(ValueError, match="did you mean 'chosn'"):
        load_pairs(path)
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"prompt": "p", "response": "r", "score.helpfull": 1.0}) + "\n")
    with pytest.raises(ValueError, match="did you mean 'score.helpfull'"):
        load_scored(path, objectives=["helpful"])
