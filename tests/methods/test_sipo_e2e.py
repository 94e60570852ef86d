"""SIPO end to end through the CLI on the embedded task (small settings): the stages, the family (MOD over
the re-aligned experts), a run killed between any two of its stages resuming to the uninterrupted result,
and the review/rewrite with a second round."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from e2e_overrides import SMALL_EVAL
from moalign.cli import main
from moalign.eval.family import load_family
from moalign.eval.harness import load_metrics
from moalign.methods.mod import MODFamily
from moalign.models.load import load_causal_lm, load_policy
from moalign.pipeline import Run

pytestmark = pytest.mark.slow

CONFIG = "configs/embedded/sipo.yaml"
SMALL = [
    *SMALL_EVAL,
    "eval.grid=list:1,0;0.5,0.5;0,1",
    "method.experts.reference=adapter",  # no reference cache over all 1200 pairs: the experts train 8 steps
    "method.experts.train.max_steps=8",
    "method.max_conflicts=8",
    "method.sampling.max_new_tokens=16",
    "method.realign.train.max_steps=4",
    "method.realign.train.per_device_train_batch_size=4",
]
OBJECTIVES = ["positivity", "brevity"]
PROMPT = "\n\nHuman: Tell me a story.\n\nAssistant:"


def _info(run_dir, stage):
    return json.loads((run_dir / stage / "info.json").read_text())


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_cli_runs_every_stage_and_the_family_is_mod_over_the_realigned_experts(tmp_path):
    run_dir = tmp_path / "sipo"
    assert main(["train", "sipo", CONFIG, f"run_dir={run_dir}", *SMALL]) == 0
    family = load_family(run_dir)
    assert isinstance(family, MODFamily) and family.name == "sipo"
    assert family.experts == [str(run_dir / "sipo" / "round1" / "expert" / o) for o in OBJECTIVES]
    assert load_metrics(run_dir)["metrics"]["n_points"]["value"] == 3

    conflicts, select = _info(run_dir, "sipo/conflicts"), _info(run_dir, "sipo/round1/select")
    assert conflicts["used"] == 8 <= conflicts["conflicting_comparisons"]
    assert 1 <= select["survivors"] <= 8 and select["new_pairs"] == 4 * select["survivors"]
    assert sum(select["survivors_by_weight"].values()) == select["survivors"]

    for k, name in enumerate(OBJECTIVES):
        ids = torch.tensor([[5, 17, 42, 9]])
        expert, _ = load_policy(run_dir / "train" / ("w=1.00,0.00", "w=0.00,1.00")[k])
        merged = load_causal_lm(run_dir / "sipo" / "round1" / "merged" / name)
        realigned = load_causal_lm(run_dir / "sipo" / "round1" / "expert" / name)
        with torch.no_grad():  # the merge is the expert; the re-aligned model moved away from it
            torch.testing.assert_close(merged(input_ids=ids).logits, expert(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
            assert not torch.allclose(realigned(input_ids=ids).logits, merged(input_ids=ids).logits)
        history = (run_dir / "sipo" / "round1" / "train" / name / "history.jsonl").read_text().splitlines()
        assert history, "the re-alignment logged its steps"


class Killed(RuntimeError):
    """Raised right after a SIPO stage finished: the run stops between two stages."""


def test_a_run_killed_between_any_two_stages_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert main(["train", "sipo", CONFIG, f"run_dir={straight}", *SMALL, "--no-eval"]) == 0

    original, finished = Run.stage, []

    def stage_then_kill(self, name, *args, **kwargs):
        computed_before = name in self.timings
        folder = original(self, name, *args, **kwargs)
        if name.startswith("sipo/") and name in self.timings and not computed_before:
            finished.append(name)
            raise Killed(name)
        return folder

    monkeypatch.setattr(Run, "stage", stage_then_kill)
    launches = 0
    while True:
        launches += 1
        try:
            assert main(["train", "sipo", CONFIG, f"run_dir={killed}", *SMALL, "--no-eval"]) == 0
            break
        except Killed:
            assert launches < 30
    expected = ["sipo/conflicts", *(f"sipo/round1/sample/a={a}" for a in ("0.20", "0.40", "0.60", "0.80")),
                "sipo/round1/scores", "sipo/round1/select"]
    for name in OBJECTIVES:
        expected += [f"sipo/round1/merged/{name}", f"sipo/round1/train/{name}", f"sipo/round1/expert/{name}"]
    assert finished == expected and launches == len(expected) + 1  # one new stage per launch, none redone

    assert (killed / "sipo/round1/select/pairs.jsonl").read_text() == (straight / "sipo/round1/select/pairs.jsonl").read_text()
    for name in OBJECTIVES:
        a, b = _weights(straight / "sipo/round1/expert" / name), _weights(killed / "sipo/round1/expert" / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_review_and_rewrite_then_a_second_round_from_the_realigned_experts(tmp_path):
    run_dir = tmp_path / "sipo"
    extra = ["method.review.objective=positivity", "method.iterations=2",
             "method.review.review_generation.max_new_tokens=16", "method.review.rewrite_generation.max_new_tokens=16"]
    assert main(["train", "sipo", CONFIG, f"run_dir={run_dir}", *SMALL, *extra]) == 0
    rows = [json.loads(line) for line in (run_dir / "sipo/round1/refine/a=0.20/rows.jsonl").read_text().splitlines()]
    assert len(rows) == 8 and all(row["review"] in row["rewrite_prompt"] or row["review"].strip() in row["rewrite_prompt"]
                                  for row in rows)
    assert all(row["response"] in row["review_prompt"] for row in rows)
    first = _info(run_dir, "sipo/round1/select")
    assert set(first["rewrites_kept"]) == {"0.20", "0.40", "0.60", "0.80"}
    assert all(0 <= n <= 8 for n in first["rewrites_kept"].values())
    second = _info(run_dir, "sipo/round2/select")
    family = load_family(run_dir)
    last = 2 if second["survivors"] else 1
    assert family.experts == [str(run_dir / "sipo" / f"round{last}" / "expert" / o) for o in OBJECTIVES]
    assert not (run_dir / "sipo/round2/merged").exists()  # round 2 starts from round 1's merged experts
    scores = np.load(run_dir / "sipo/round2/scores/scores.npz", allow_pickle=True)
    assert list(scores["columns"]) == ["expert:positivity", "expert:brevity", "soup:a=0.20", "soup:a=0.40",
                                       "soup:a=0.60", "soup:a=0.80"]
