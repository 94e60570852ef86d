"""Saving and rebuilding policy families (built-in types and the "factory" hook methods use)."""

import json

import numpy as np
import pytest

from moalign.eval.family import CheckpointFamily, SharedModelFamily, load_family, save_family


class _Custom:
    """A family of a kind eval does not know: it names its own factory."""

    name = "custom"

    def __init__(self, alpha):
        self.alpha = alpha

    def policy(self, w):  # pragma: no cover - not generated from in this test
        raise NotImplementedError

    def describe(self):
        return {"factory": f"{__name__}:rebuild", "name": self.name, "alpha": self.alpha}


def rebuild(description, root):
    family = _Custom(description["alpha"])
    family.root = root
    return family


def test_checkpoint_family_round_trip_with_paths_relative_to_the_run(tmp_path):
    for name in ("a", "b"):
        (tmp_path / "ckpt" / name).mkdir(parents=True)
    family = CheckpointFamily("per-w", {(0.2, 0.8): tmp_path / "ckpt" / "a", (0.8, 0.2): tmp_path / "ckpt" / "b"})
    save_family(family, tmp_path / "family.json")
    saved = json.loads((tmp_path / "family.json").read_text())
    assert saved["checkpoints"] == {"w=0.20,0.80": "ckpt/a", "w=0.80,0.20": "ckpt/b"}  # keyed by preference tag
    assert saved["points"] == {"w=0.20,0.80": [0.2, 0.8], "w=0.80,0.20": [0.8, 0.2]}
    loaded = load_family(tmp_path)  # a run folder holding family.json works too
    assert loaded.describe() == family.describe()
    assert loaded.checkpoint_for(np.array([0.8, 0.2])) == str(tmp_path / "ckpt" / "b")
    with pytest.raises(KeyError, match="no checkpoint for preference w=0.50,0.50"):
        loaded.checkpoint_for([0.5, 0.5])


def test_shared_family_keeps_hub_names_and_rebuilds(tmp_path):
    save_family(SharedModelFamily("base", "embedded"), tmp_path / "family.json")
    loaded = load_family(tmp_path / "family.json")
    assert isinstance(loaded, SharedModelFamily) and loaded.path == "embedded"


def test_factory_families_rebuild_through_their_own_function(tmp_path):
    save_family(_Custom(0.3), tmp_path / "family.json")
    loaded = load_family(tmp_path / "family.json")
    assert isinstance(loaded, _Custom) and loaded.alpha == 0.3 and loaded.root == tmp_path.resolve()


def test_unknown_types_and_missing_files_are_clear_errors(tmp_path):
    class Bare:
        name = "bare"

        def describe(self):
            return {"type": "mystery"}

    with pytest.raises(ValueError, match="factory"):
        save_family(Bare(), tmp_path / "f.json")
    with pytest.raises(FileNotFoundError, match="no policy family"):
        load_family(tmp_path / "nothing")
    (tmp_path / "bad.json").write_text(json.dumps({"factory": "nocolon"}))
    with pytest.raises(ValueError, match="module:function"):
        load_family(tmp_path / "bad.json")


def test_a_trained_family_and_the_same_family_loaded_back_hash_alike(tmp_path, monkeypatch):
    """The generation stages hash ``portable_description``: a family built in this process with a relative run
    folder and the same family read back from family.json (absolute paths) are one family."""
    from moalign.eval.family import portable_description
    from moalign.methods.panacea import PanaceaFamily

    monkeypatch.chdir(tmp_path)
    for stage in ("runs/x/train/a", "runs/x/train/b", "runs/x/train/panacea-ls"):
        (tmp_path / stage).mkdir(parents=True)
    trained = [CheckpointFamily("ckpt", {(1.0, 0.0): "runs/x/train/a", (0.0, 1.0): "runs/x/train/b"}),
               PanaceaFamily("runs/x/train/panacea-ls", 2, name="panacea-ls")]
    for family in trained:
        save_family(family, "runs/x/family.json")
        loaded = load_family("runs/x")
        assert family.describe() != loaded.describe()  # cwd-relative vs absolute paths
        assert portable_description(family, "runs/x") == portable_description(loaded, tmp_path / "runs/x")
    assert portable_description(trained[1], "runs/x")["path"] == "train/panacea-ls"


def test_trained_versions_name_the_stage_hash_of_every_model_folder_a_description_points_at(tmp_path):
    """What the evaluation stages hash besides the description: a model retrained in place (same folder,
    new inputs) changes it, so its old generations are not read back."""
    from moalign.eval.family import trained_versions
    from moalign.pipeline import Run

    with Run(tmp_path / "run", echo=None) as run:
        for name in ("train/w=1.00,0.00", "sipo/expert/a", "sipo/expert/b"):
            run.stage(name, {"lr": 1}, lambda out: None)
        checkpoints = {"type": "checkpoints", "checkpoints": {"1,0": "train/w=1.00,0.00"}}
        experts = {"type": "mod", "path": "sipo/expert", "experts": ["a", "b"], "rule": "reverse_kl"}
        first = trained_versions(checkpoints, run.root), trained_versions(experts, run.root)
        assert first[0] == {"train/w=1.00,0.00": run.stage_hash("train/w=1.00,0.00")}
        assert first[1] == {"sipo/expert/a": run.stage_hash("sipo/expert/a"), "sipo/expert/b": run.stage_hash("sipo/expert/b")}
        run.stage("sipo/expert/b", {"lr": 2}, lambda out: None)  # retrained in place
        again = trained_versions(experts, run.root)
        assert again["sipo/expert/a"] == first[1]["sipo/expert/a"] and again["sipo/expert/b"] != first[1]["sipo/expert/b"]
    assert trained_versions({"type": "base", "path": "embedded"}, tmp_path) == {}


def test_a_checkpoint_family_loads_a_folders_model_on_first_use_and_once(tmp_path, tiny_lm_dir, monkeypatch):
    """The tokenizer comes with the policy, the HF model only when ``hf_model`` asks for it (a vLLM decode
    never does); it is kept while the next w names the same folder, and loaded in float32 on a CPU whatever the
    decode's dtype (a family that names its dtype, as the base model's, keeps it)."""
    import moalign.models.load as load

    loads, real = [], load.load_policy_model
    monkeypatch.setattr(load, "load_policy_model", lambda path, *a, **k: loads.append((path, k["dtype"])) or real(path, *a, **k))
    shared = str(tiny_lm_dir)
    family = CheckpointFamily("per-w", {(1.0, 0.0): shared, (0.5, 0.5): shared})
    with family.policy([1.0, 0.0]) as policy:
        assert policy.model is None and loads == []
        assert policy.tokenizer.get_vocab() == load.load_policy_tokenizer(shared).get_vocab()
        first = policy.hf_model("bfloat16")
        assert policy.hf_model("bfloat16") is first
    with family.policy([0.5, 0.5]) as policy:  # the same folder: the same model, no second load
        assert policy.model is first and policy.hf_model("bfloat16") is first
    assert loads == [(shared, "float32")] and str(next(first.parameters()).dtype) == "torch.float32"
    base = SharedModelFamily("base", shared, dtype="bfloat16")
    with base.policy([1.0, 0.0]) as policy:
        assert str(next(policy.hf_model().parameters()).dtype) == "torch.bfloat16"
    assert loads[-1] == (shared, "bfloat16")
