"""Run.stage: atomic stage folders, skipping finished stages, rerunning with the reason, downstream only; the
run directory's lock (one process at a time), stage names kept inside it, a read-only run_dir."""

import json
import os
import signal
import subprocess
import sys

import pytest

from moalign.config import ConfigError
from moalign.pipeline import LOCK_FILE, STAGE_FILE, Run, RunLockedError, hold_run_dir, main_rank


def _writer(text, calls):
    def compute(tmp):
        calls.append(text)
        (tmp / "out.txt").write_text(text)

    return compute


def test_finished_stage_is_skipped_and_changed_inputs_rerun_with_the_reason(tmp_path):
    messages, calls = [], []
    run = Run(tmp_path, echo=messages.append)
    run.stage("a", {"lr": 1, "n": 2}, _writer("one", calls))
    run.stage("a", {"lr": 1, "n": 2}, _writer("two", calls))
    assert calls == ["one"] and messages[-1] == "[a] done already, skipped"
    run.stage("a", {"lr": 3, "n": 2}, _writer("three", calls))
    assert calls == ["one", "three"] and (tmp_path / "a" / "out.txt").read_text() == "three"
    assert any("rerunning: input(s) changed: lr 1 -> 3" in m for m in messages)


def test_a_change_propagates_downstream_only(tmp_path):
    messages, calls = [], []
    run = Run(tmp_path, echo=messages.append)
    run.stage("up", {"x": 1}, _writer("up1", calls))
    run.stage("side", {"y": 1}, _writer("side1", calls))
    run.stage("down", {}, _writer("down1", calls), depends_on=["up"])
    run.stage("up", {"x": 2}, _writer("up2", calls))
    run.stage("side", {"y": 1}, _writer("side2", calls))
    run.stage("down", {}, _writer("down2", calls), depends_on=["up"])
    assert calls == ["up1", "side1", "down1", "up2", "down2"]
    assert any("[down] rerunning: upstream stage 'up' changed" in m for m in messages)


def test_a_failing_stage_leaves_nothing_and_a_missing_dependency_is_an_error(tmp_path):
    run = Run(tmp_path, echo=None)

    def boom(tmp):
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        run.stage("s", {}, boom)
    assert not (tmp_path / "s").exists() and not list(tmp_path.glob(".s.*"))
    with pytest.raises(RuntimeError, match="needs stage"):
        run.stage("t", {}, _writer("t", []), depends_on=["s"])


def test_nested_sub_stages_and_leftovers_of_a_killed_run(tmp_path):
    messages = []
    run = Run(tmp_path, echo=messages.append)
    (tmp_path / "eval" / "gen").mkdir(parents=True)
    stale = tmp_path / "eval" / "gen" / ".w_0.500.abc123.partial"  # what a SIGKILL mid-stage leaves behind
    stale.mkdir()
    path = run.stage("eval/gen/w_0.500", {"w": [0.5, 0.5]}, _writer("x", []))
    assert path == tmp_path / "eval" / "gen" / "w_0.500" and not stale.exists()
    record = json.loads((path / STAGE_FILE).read_text())
    assert record["inputs"] == {"w": [0.5, 0.5]} and "seconds" in record
    assert "eval/gen/w_0.500" in run.recorded_seconds()
    assert any("unfinished attempt" in m for m in messages)


# ---------------------------------------------------------------------------------------------------------
# one process per run directory; stage names stay inside it; a read-only run_dir is a one-line error
# ---------------------------------------------------------------------------------------------------------

HOLD = "import sys, time; from moalign.pipeline import Run; r = Run(sys.argv[1], echo=None); print('held', flush=True); " \
       "time.sleep(300)"


def _hold_in_another_process(root):
    """A child process that holds ``root``'s lock until it is killed; returns it once it holds the lock."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(root)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.stdout.readline().strip() == "held"
    return proc


def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def test_a_second_process_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path):
    root = tmp_path / "run"
    child = _hold_in_another_process(root)
    try:
        owner = json.loads((root / LOCK_FILE).read_text())
        assert owner["pid"] == child.pid
        before = _tree(tmp_path)
        with pytest.raises(RunLockedError) as caught:
            Run(root, echo=None)
        message = str(caught.value)
        assert f"run_dir {root} is in use by another moalign process (pid {child.pid} on" in message
        assert str(root / LOCK_FILE) in message and "choose another run_dir" in message and "\n" not in message
        assert _tree(tmp_path) == before  # the refused process touched nothing
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert (root / LOCK_FILE).is_file()  # a SIGKILL leaves the file, but the OS lock died with the process
    messages = []
    run = Run(root, echo=messages.append)
    assert messages == [f"[run] took over {root / LOCK_FILE}, left by pid {child.pid} (no longer running)"]
    assert json.loads((root / LOCK_FILE).read_text())["pid"] == os.getpid()
    run.close()
    assert not (root / LOCK_FILE).exists()  # a clean finish leaves no lock file


def test_runs_of_one_process_share_the_lock_until_the_last_closes(tmp_path):
    first = Run(tmp_path, echo=None)
    with Run(tmp_path, echo=None) as second:
        assert second.lock is first.lock and first.lock.count == 2
    assert (tmp_path / LOCK_FILE).is_file() and first.lock.count == 1
    del first  # garbage collection releases it too
    assert not (tmp_path / LOCK_FILE).exists()


def test_only_the_main_rank_takes_the_lock(tmp_path, monkeypatch):
    assert hold_run_dir(tmp_path / "a", rank0=False) is None
    assert not (tmp_path / "a").exists()  # another rank never touches the run directory's lock
    monkeypatch.setenv("RANK", "3")
    assert not main_rank() and hold_run_dir(tmp_path / "b") is None and not (tmp_path / "b").exists()
    monkeypatch.setenv("RANK", "0")
    lock = hold_run_dir(tmp_path, echo=None)
    assert main_rank() and json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()
    lock.release()


@pytest.mark.parametrize("name", ["../outside", "a/../../outside", "/tmp/outside", "", ".", "a//b", "a/./b",
                                  "..\\outside", "margin/../../../X"])
def test_a_stage_name_cannot_lead_outside_the_run_directory(tmp_path, name):
    run = Run(tmp_path / "run", echo=None)
    with pytest.raises(ValueError, match="would lead outside the run directory") as caught:
        run.stage(name, {}, _writer("x", []))
    assert repr(name) in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert [p.name for p in (tmp_path / "run").iterdir()] == [LOCK_FILE]


def test_a_read_only_run_dir_is_a_config_error_naming_the_folder(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if str(p).startswith(str(folder)) and mode & os.W_OK
                        else real_access(p, mode, **kw))  # as root, permission bits would not stop the write
    with pytest.raises(ConfigError) as caught:
        Run(folder / "new" / "run", echo=None)
    assert str(caught.value) == (f"run_dir {folder / 'new' / 'run'}: the folder {folder} is not writable (permissions "
                                 "or a read-only file system); choose a writable folder with run_dir=..., or fix its "
                                 "permissions")
    assert list(folder.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        Run(tmp_path / "file" / "run", echo=None)


def test_a_setting_added_later_changes_no_existing_stage_hash_until_it_is_set():
    import dataclasses

    from moalign.config import TaskConfig, TrainSettings, to_dict
    from moalign.pipeline import inputs_hash

    settings = TrainSettings()
    before = {k: v for k, v in to_dict(settings).items() if k not in ("keep_checkpoints", "extra")}
    assert inputs_hash({"train": settings}) == inputs_hash({"train": before})  # as hashed before they existed
    assert inputs_hash({"train": dataclasses.replace(settings, keep_checkpoints=True)}) != inputs_hash({"train": before})
    assert inputs_hash({"train": dataclasses.replace(settings, extra={"optim": "sgd"})}) != inputs_hash({"train": before})
    task = TaskConfig()
    old_task = {k: v for k, v in to_dict(task).items() if k not in ("chat_template", "chat_tokenizer")}
    assert inputs_hash(task) == inputs_hash(old_task)
    assert "keep_checkpoints" in to_dict(settings)  # the saved config still writes every field
