"""A real `python -m moalign.eval.harness` process, killed with SIGKILL after its second stage, resumes:
finished stages are skipped and the final metrics equal those of an uninterrupted run with the same seed.

The interpreter start-up and model load of the killed process take most of this test's ~15 s."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from moalign.eval.harness import eval_command


def _config(path: Path, run_dir: Path, model_dir: str, prompts_file: str) -> Path:
    config = {
        "run_dir": str(run_dir),
        "model": {"name_or_path": model_dir},
        "task": {"objectives": ["positivity", "brevity"], "rewards": ["positivity", "brevity"]},
        "eval": {"grid": "simplex:10", "prompts_file": prompts_file, "normalization": "none", "progress": False,
                 "generation": {"max_new_tokens": 8, "batch_size": 8}},
    }
    path.write_text(yaml.safe_dump(config))
    return path


def _finished(run_dir: Path) -> set[str]:
    return {str(p.parent.relative_to(run_dir)) for p in run_dir.rglob("_stage.json")}


def _without_name(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "name"}


def test_a_killed_run_resumes_and_matches_an_uninterrupted_one(tmp_path, tiny_lm_dir, prompts_file, capsys):
    run_dir = tmp_path / "killed"
    config = _config(tmp_path / "eval.yaml", run_dir, tiny_lm_dir, prompts_file)
    command = [sys.executable, "-m", "moalign.eval.harness", str(config)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 180
    while len(_finished(run_dir)) < 2:
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
        assert time.monotonic() < deadline, "the run did not finish two stages in time"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    done = _finished(run_dir)
    assert {"eval/prompts", "eval/generate/w=0.00,1.00"} <= done and "eval/metrics" not in done

    # the same command again (in this process, to save a second interpreter start-up)
    capsys.readouterr()
    assert eval_command(str(config), []) == 0
    resumed = capsys.readouterr().out
    for stage in done:
        assert f"[{stage}] done already, skipped" in resumed
    assert "[eval/metrics] finished in" in resumed and "[report] finished in" in resumed
    assert not list(run_dir.rglob("*.partial")), "a killed attempt's temporary folder was left behind"

    assert eval_command(str(config), [f"run_dir={tmp_path / 'straight'}"]) == 0
    killed = json.loads((run_dir / "eval/metrics/metrics.json").read_text())
    straight = json.loads((tmp_path / "straight/eval/metrics/metrics.json").read_text())
    assert _without_name(killed) == _without_name(straight)
    assert len(killed["points"]) == 11
