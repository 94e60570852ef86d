"""The bad-input matrix of `moalign score` / `select` / `train` / `eval`, run in-process through ``moalign.cli.main``.

Every case must end with exit code 2 and ONE stderr line ``moalign VERB: error: ...`` that names the bad
thing and says how to fix it; no traceback; and every file and folder in the working folder (the inputs, any
existing output) byte-for-byte as before, with nothing added (no partial output, no temporary file). For
`train` and `eval` that means the whole config is checked before the run directory is created: a bad value
never costs the stages before the one that would have tripped on it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import tempfile
from pathlib import Path

import pytest

from moalign.cli import main

SCORES = [(1.0, 2.0), (2.0, 1.0), (0.5, 0.5), (1.5, 1.5)]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working folder with every input the cases use; the tests run inside it (relative paths)."""
    monkeypatch.chdir(tmp_path)
    _jsonl(tmp_path / "s.jsonl", [{"prompt": "p", "response": f"r{i}", "score.x": x, "score.y": y}
                                  for i, (x, y) in enumerate(SCORES)])
    _jsonl(tmp_path / "one.jsonl", [{"prompt": "p", "response": f"r{i}", "score.x": x} for i, (x, _) in enumerate(SCORES)])
    _jsonl(tmp_path / "huge.jsonl", [{"prompt": "p", "response": f"r{i}", "score.x": 1.5e300 * x, "score.y": -1.5e300 * y}
                                     for i, (x, y) in enumerate(SCORES)])
    _jsonl(tmp_path / "nan.jsonl", [{"prompt": "p", "response": "r", "score.x": 1.0, "score.y": math.nan}])
    _jsonl(tmp_path / "misspelt.jsonl", [{"promt": "p", "response": "r", "score.x": 1.0}])
    _jsonl(tmp_path / "responses.jsonl", [{"prompt": "Hi?", "response": r} for r in ("Great, thanks!", "No.", "Fine.")])
    _jsonl(tmp_path / "same_length.jsonl", [{"prompt": "Hi?", "response": r} for r in ("Great!", "No.", "Fine.")])
    (tmp_path / "existing.jsonl").write_text("keep me\n")
    (tmp_path / "existing.json").write_text('{"keep": "me"}\n')
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "existing_dir" / "notes.txt").write_text("my notes")
    (tmp_path / "existing_dir.jsonl").mkdir()
    (tmp_path / "existing_dir.jsonl" / "notes.txt").write_text("more notes")
    (tmp_path / "ro").mkdir()
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "weights.txt").write_text("not a model")
    (tmp_path / "method5.yaml").write_text("run_dir: runs/m5\nmethod: 5\n")
    (tmp_path / "latin1.yaml").write_bytes("run_dir: runs/l1\ntask:\n  name: caf\xe9\n".encode("latin-1"))
    (tmp_path / "eval.yaml").write_text("run_dir: runs/eval\ntask:\n  num_test_prompts: 2\n")
    return tmp_path


def _read_only(folder: Path, monkeypatch) -> None:
    """Make ``folder`` unwritable; as root permission bits do not stop writes, so deny them as the OS would."""
    folder.chmod(0o555)
    if os.geteuid() != 0:
        return
    inside = str(folder.resolve())
    real_access, real_mkstemp, real_mkdtemp = os.access, tempfile.mkstemp, tempfile.mkdtemp

    def denied(path) -> bool:
        return str(Path(path).resolve()).startswith(inside)

    def access(path, mode, **kw):
        return False if denied(path) and mode & os.W_OK else real_access(path, mode, **kw)

    def mkstemp(*args, dir=None, **kw):
        if dir is not None and denied(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkstemp(*args, dir=dir, **kw)

    def mkdtemp(*args, dir=None, **kw):
        if dir is not None and denied(dir):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real_mkdtemp(*args, dir=dir, **kw)

    monkeypatch.setattr(os, "access", access)
    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)


def _disk_full(monkeypatch) -> None:
    """Every temporary file fails as on a full disk (an OSError the CLI did not catch before)."""

    def full(*args, dir=None, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(dir))

    monkeypatch.setattr(tempfile, "mkstemp", full)
    monkeypatch.setattr(tempfile, "mkdtemp", full)


def _offline(folder, monkeypatch) -> None:
    """The Hub is off, and the Hugging Face cache is an empty folder: a Hub id cannot load."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(folder / "hub_cache"))


SELECT = ["select", "s.jsonl"]
SCORE = ["score", "responses.jsonl", "--rewards", "brevity"]
TRAIN = ["train", "paretohqd"]  # the embedded config: run_dir runs/paretohqd, inside the working folder

# id, argv, words the message must hold (the thing and the fix), set-up
CASES = [
    ("out-file-exists", [*SELECT, "--out", "existing.jsonl"],
     ["--out existing.jsonl already exists (a file)", "--overwrite"], None),
    ("out-folder-exists", [*SELECT, "--out", "existing_dir"],
     ["--out existing_dir already exists (a folder)", "--overwrite"], None),
    ("out-folder-exists-with-a-file-name", [*SELECT, "--layers", "2", "--out", "existing_dir.jsonl"],
     ["existing_dir.jsonl already exists (a folder)", "--overwrite"], None),
    ("score-out-exists", [*SCORE, "--out", "existing.jsonl"], ["--out existing.jsonl already exists", "--overwrite"], None),
    ("score-stats-out-exists", [*SCORE, "--out", "new.jsonl", "--stats-out", "existing.json"],
     ["--stats-out existing.json already exists", "--overwrite"], None),
    ("stats-out-is-out", [*SCORE, "--out", "new.jsonl", "--stats-out", "new.jsonl"],
     ["--stats-out and --out both name new.jsonl", "own file"], None),
    ("overwrite-the-current-folder", [*SELECT, "--out", ".", "--overwrite"],
     ["--out . is a folder holding the current folder", "choose another output path"], None),
    ("overwrite-the-inputs-folder", ["select", "existing_dir/notes.txt", "--out", "existing_dir", "--overwrite"],
     ["--out existing_dir is a folder holding the input existing_dir/notes.txt"], None),
    ("out-read-only", [*SELECT, "--out", "ro/f.jsonl"], ["--out ro/f.jsonl", "ro is not writable", "writable folder"],
     _read_only),
    ("out-missing-parent-in-read-only", [*SELECT, "--out", "ro/new/f.parquet"],
     ["--out ro/new/f.parquet", "ro is not writable"], _read_only),
    ("score-out-read-only", [*SCORE, "--out", "ro/s.jsonl"], ["--out ro/s.jsonl", "not writable"], _read_only),
    ("out-parent-is-a-file", [*SELECT, "--out", "s.jsonl/f.jsonl"], ["--out s.jsonl/f.jsonl", "s.jsonl is a file"], None),
    ("disk-full", [*SELECT, "--out", "f.jsonl"], ["cannot write --out f.jsonl: No space left on device", "free some space"],
     lambda folder, mp: _disk_full(mp)),
    ("missing-input", ["select", "nope.jsonl", "--out", "f.jsonl"], ["nope.jsonl", "no such file", ".jsonl"], None),
    ("score-missing-input", ["score", "nope.jsonl", "--rewards", "brevity", "--out", "f.jsonl"], ["nope.jsonl"], None),
    ("misspelt-column", ["select", "misspelt.jsonl", "--out", "f.jsonl"],
     ["misspelt.jsonl", "missing column 'prompt'", "did you mean 'promt'"], None),
    ("nan-score", ["select", "nan.jsonl", "--out", "f.jsonl"], ["nan.jsonl", "row 1", "score.y", "NaN"], None),
    ("k-zero", [*SELECT, "--preference", "0.5,0.5", "--k", "0", "--out", "f.jsonl"], ["--k 0", "at least 1"], None),
    ("layers-zero", [*SELECT, "--layers", "0", "--out", "f.jsonl"], ["--layers 0", "at least 1"], None),
    ("preference-not-numbers", [*SELECT, "--preference", "abc", "--out", "f.jsonl"],
     ["--preference 'abc' is not a list of numbers", "comma-separated", "(x, y)", "e.g. --preference 0.5,0.5"], None),
    ("preference-wrong-length", [*SELECT, "--preference", "0.5,0.3,0.2", "--out", "f.jsonl"],
     ["--preference", "exactly 2 entries", "(x, y)"], None),
    ("preference-off-simplex", [*SELECT, "--preference", "0.5,0.6", "--out", "f.jsonl"], ["--preference", "sums to 1.1"],
     None),
    ("preference-one-objective", ["select", "one.jsonl", "--preference", "1", "--k", "1", "--out", "f.jsonl"],
     ["--preference needs at least two objectives", "one.jsonl has one ('x')", "drop --preference"], None),
    ("constant-reward-stats-out", ["score", "same_length.jsonl", "--rewards", "brevity", "--out", "sc.jsonl",
                                   "--stats-out", "z.json"], ["'brevity'", "standard deviation 0"], None),
    ("huge-scores", ["select", "huge.jsonl", "--preference", "0.5,0.5", "--k", "2", "--out", "f.jsonl"],
     ["huge.jsonl", "overflow", "rescale the scores"], None),
    # train / eval: the config, checked whole before the run directory exists
    ("train-model-not-a-model", [*TRAIN, "model.name_or_path=not_a_model", "--no-eval"],
     ["model.name_or_path='not_a_model'", "no config.json", "a Hub id (org/name) or 'embedded'"], None),
    ("train-model-missing-folder", [*TRAIN, "model.name_or_path=./models/llama", "--no-eval"],
     ["model.name_or_path='./models/llama': no such folder", "'embedded'"], None),
    ("train-hub-id-offline-not-cached", [*TRAIN, "model.name_or_path=moalign-test/no-such-model", "--no-eval"],
     ["model.name_or_path='moalign-test/no-such-model'", "not in the local Hugging Face cache", "HF_HUB_OFFLINE=1",
      "hf download moalign-test/no-such-model"], _offline),
    ("eval-model-not-a-model", ["eval", "eval.yaml", "model.name_or_path=not_a_model"],
     ["model.name_or_path='not_a_model'", "no config.json"], None),
    ("train-run-dir-read-only", [*TRAIN, "run_dir=ro/run", "--no-eval"],
     ["run_dir ro/run: the folder ro is not writable", "choose a writable folder with run_dir="], _read_only),
    ("eval-run-dir-read-only", ["eval", "eval.yaml", "run_dir=ro/run"], ["run_dir ro/run", "ro is not writable"],
     _read_only),
    ("train-run-dir-under-a-file", [*TRAIN, "run_dir=s.jsonl/run", "--no-eval"],
     ["run_dir s.jsonl/run: s.jsonl is a file, not a folder"], None),
    ("train-method-not-a-section", [*TRAIN, "method5.yaml"],
     ["method5.yaml: method: expected a section", "got 5 (int)", "key: value"], None),
    ("train-config-not-utf8", [*TRAIN, "latin1.yaml"],
     ["latin1.yaml: not UTF-8 text: byte 0xe9 at offset 34 (line 3)", "save the file as UTF-8"], None),
    ("eval-config-not-utf8", ["eval", "latin1.yaml"], ["latin1.yaml: not UTF-8 text", "(line 3)"], None),
    ("objective-name-leaves-the-run-dir", ["train", "modpo", "task.objectives=[positivity,../../../X]",
                                           "task.rewards=[positivity,brevity]", "--no-eval"],
     ["task.objectives: '../../../X' is not a safe name", "no '/', no '..'"], None),
    ("paretohqd-num-layers-zero", [*TRAIN, "method.num_layers=0", "--no-eval"],
     ["method.num_layers=0: must be an integer >= 1"], None),
    ("paretohqd-k-zero", [*TRAIN, "method.k=0", "--no-eval"], ["method.k=0: must be an integer >= 1"], None),
    ("dpo-beta-zero", ["train", "dpo", "method.beta=0", "--no-eval"], ["method.beta=0", "> 0"], None),
    ("train-batch-size-zero", [*TRAIN, "method.train.per_device_train_batch_size=0", "--no-eval"],
     ["method.train: per_device_train_batch_size=0: must be an integer >= 1"], None),
    ("train-unknown-dtype", [*TRAIN, "model.dtype=fp8", "--no-eval"], ["model.dtype='fp8' is not known", "bfloat16"],
     None),
    ("train-eval-grid-unknown", [*TRAIN, "eval.grid=rick", "--no-eval"], ["eval.grid='rick'", "known: "], None),
    ("train-method-grid-misses-eval-points", [*TRAIN, "method.grid=list:1,0", "--no-eval"],
     ["method.grid='list:1,0'", "has no model for evaluation preference(s)"], None),
    ("train-hf-reward-not-a-model", [*TRAIN, "task.rewards=[positivity,hf:not_a_model]", "--no-eval"],
     ["task.rewards[1]='not_a_model'", "no config.json"], None),
]


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else stat.S_IMODE(p.stat().st_mode))
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("argv, words, setup", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_touches_nothing(work, monkeypatch, capsys, argv, words, setup):
    if setup is not None:
        setup(work / "ro", monkeypatch)
    before = _snapshot(work)
    try:
        code = main(argv)
        after = _snapshot(work)
    finally:
        (work / "ro").chmod(0o755)  # so that pytest can clean up
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and "reward/s" not in line]  # drop progress bars
    assert code == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith(f"moalign {argv[0]}: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert after == before  # inputs and existing outputs byte-for-byte, nothing added


# ---------------------------------------------------------------------------------------------------------
# the success cases
# ---------------------------------------------------------------------------------------------------------


def test_select_writes_parquet_with_the_pareto_layer_column(work):
    import pyarrow.parquet as pq

    from moalign.data import load_scored

    assert main([*SELECT, "--layers", "2", "--out", "front.parquet"]) == 0
    back = load_scored(work / "front.parquet")
    assert back.responses == ["r0", "r1", "r2", "r3"]  # file order; layer 0: r0, r1, r3; layer 1: r2
    assert pq.read_table(work / "front.parquet").column("pareto_layer").to_pylist() == [0, 0, 1, 0]


@pytest.mark.parametrize("target", ["existing.jsonl", "existing_dir", "existing_dir.jsonl"])
def test_overwrite_replaces_an_existing_output(work, target):
    from moalign.data import load_scored

    assert main([*SELECT, "--out", target, "--overwrite"]) == 0
    assert load_scored(work / target).responses == ["r0", "r1", "r3"]
    assert not [p for p in work.iterdir() if p.name.startswith(".")]  # no temporary or renamed-aside entry left


def test_score_with_stats_out_writes_both_with_normal_permissions(work):
    from moalign.data import load_scored
    from moalign.rewards.normalize import ZScore

    old = os.umask(0o022)
    try:
        assert main([*SCORE, "--out", "sc.jsonl", "--stats-out", "z.json"]) == 0
    finally:
        os.umask(old)
    assert load_scored(work / "sc.jsonl").scores[:, 0].tolist() == [-2.0, -1.0, -1.0]  # minus the word count
    assert ZScore.load(work / "z.json").mean[0] == pytest.approx(-4 / 3)
    for name in ("sc.jsonl", "z.json"):
        assert stat.S_IMODE((work / name).stat().st_mode) == 0o644


HOLD = "import sys, time; from moalign.pipeline import Run; r = Run(sys.argv[1], echo=None); print('held', flush=True); " \
       "time.sleep(300)"


def test_train_in_a_run_dir_another_process_holds_is_one_line_exit_2(work, capsys):
    """A second `moalign train` on a run directory in use refuses, naming the owner; nothing is touched."""
    import signal
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", HOLD, "runs/paretohqd"], cwd=work, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(work)
        code = main([*TRAIN, "--no-eval"])
        after = _snapshot(work)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith("moalign train: error: run_dir runs/paretohqd is in use by another moalign process "
                               f"(pid {holder.pid} on "), lines[0]
    assert "lock runs/paretohqd/run.lock" in lines[0] and "choose another run_dir=..." in lines[0]
    assert after == before
