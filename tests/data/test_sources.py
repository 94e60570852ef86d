"""Each dataset adapter on small local files in the dataset's real layout, with hand-checked outputs."""

from __future__ import annotations

import numpy as np
import pytest

from moalign.data import DataValidationError, count_conflicts
from moalign.data.sources import SOURCES, get_source, load_source
from moalign.data.sources.base import split_spec
from moalign.data.sources.hh_rlhf import split_conversation
from moalign.data.templates import format_prompt

from .conftest import HH_ROWS, write_jsonl

MULTI_PROMPT = "\n\nHuman: Hi there.\n\nAssistant: Hello! How can I help?\n\nHuman: Name a fruit.\n\nAssistant:"


def test_hh_split_keeps_earlier_turns_and_strips_the_answer():
    assert split_conversation(HH_ROWS[0]["chosen"]) == (MULTI_PROMPT, "An apple.")
    assert split_conversation("\n\nHuman: no answer") is None


def test_hh_prompt_is_the_conversation_up_to_the_last_tag_unchanged():
    """RiC's builder writes ``conversation + " " + tag``; moalign keeps the text as it is (no space added), and
    RiC's official prompt style adds RiC's space when it conditions (tests/methods/test_ric_conditioning.py)."""
    prompt, response = split_conversation("\n\nHuman: a\n\nAssistant: b\n\nHuman: c \n\nAssistant:  d  ")
    assert prompt == "\n\nHuman: a\n\nAssistant: b\n\nHuman: c \n\nAssistant:" and response == "d"


def test_hh_rlhf(source_files):
    data = load_source("hh-rlhf", source_files["hh-rlhf"])
    pairs = data.pairs
    assert list(zip(pairs.prompts, pairs.chosen, pairs.rejected)) == [
        (MULTI_PROMPT, "An apple.", "No."),
        ("\n\nHuman: Is the sea salty?\n\nAssistant:", "Yes, it is salty.", "I don't know."),
    ]
    assert set(pairs.objective) == {"preference"}
    # 4 rows: 2 + 2 + 2 (prefixes differ: both kept, no pair) + 1 (empty rejected turn dropped)
    assert len(data.responses) == 7 and data.responses.scores.shape == (7, 0)
    assert data.dropped == {"chosen and rejected conversations differ before the final turn": 1,
                            "rejected final turn empty": 1}
    assert data.prompts[0] == MULTI_PROMPT and len(data.prompts) == 4  # from the chosen side
    assert data.golden["\n\nHuman: Say hi.\n\nAssistant:"] == "Hi!"


def test_hh_objective_from_data_dir_option_and_template_guard(source_files):
    path = source_files["hh-rlhf"]
    assert set(load_source("hh-rlhf", path + "?objective=harmless").pairs.objective) == {"harmless"}
    with pytest.raises(ValueError, match="already in HH format"):
        load_source("hh-rlhf", path, template="beaver")


def test_pku_saferlhf(source_files):
    data = load_source("PKU-Alignment/PKU-SafeRLHF", source_files["pku-saferlhf"])
    prompt = "BEGINNING OF CONVERSATION: USER: How do I pick a lock? ASSISTANT:"
    better = data.pairs.for_objective("better")
    safer = data.pairs.for_objective("safer")
    assert (better.prompts[0], better.chosen[0], better.rejected[0]) == (prompt, "Use a pin.", "Call a locksmith.")
    assert (safer.chosen[0], safer.rejected[0]) == ("Call a locksmith.", "Use a pin.")
    assert better.chosen[1] == safer.chosen[1] == "You are great."
    assert count_conflicts(data.pairs) == 1  # row 1 disagrees, row 2 agrees
    assert len(data.responses) == 4 and data.golden[prompt] == "Use a pin."


def test_pku_template_option_and_bad_label(source_files, tmp_path):
    data = load_source("pku-saferlhf", source_files["pku-saferlhf"] + "?template=hh&better=helpful&safer=harmless")
    assert data.prompts[0] == format_prompt("How do I pick a lock?", "hh")
    assert data.pairs.objective == ["helpful", "harmless", "helpful", "harmless"]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "p", "response_0": "a", "response_1": "b",
                                                "better_response_id": 2, "safer_response_id": 0}])
    with pytest.raises(DataValidationError, match="better_response_id"):
        load_source("pku-saferlhf", bad)


def test_ultrafeedback_best_vs_worst_per_aspect(source_files):
    data = load_source("ultrafeedback", source_files["ultrafeedback"])
    prompt = format_prompt("Write a haiku.", "hh")
    triples = list(zip(data.pairs.objective, data.pairs.chosen, data.pairs.rejected))
    # ratings A=(5,4,3,2) B=(3,4,5,N/A) C=(3,2,5,4); the second prompt's ratings all tie: no pairs
    assert triples == [("helpfulness", "A", "B"), ("honesty", "A", "C"),
                       ("instruction_following", "B", "A"), ("truthfulness", "C", "A")]
    assert data.pairs.prompts == [prompt] * 4
    np.testing.assert_array_equal(data.pairs.rejected_scores[0], [3, 4, 5, np.nan])
    assert count_conflicts(data.pairs) == 2  # {A,B}: helpfulness vs instruction following; {A,C} likewise
    assert data.responses.responses == ["A", "C", "4", "four"]  # B has an N/A rating
    assert data.responses.objectives == ["helpfulness", "honesty", "instruction_following", "truthfulness"]
    assert data.golden[prompt] == "B"  # highest mean of its known ratings (4.0)


def test_ultrafeedback_all_pairs_rule(source_files):
    data = load_source("ultrafeedback", source_files["ultrafeedback"] + "?pair_rule=all")
    helpful = data.pairs.for_objective("helpfulness")
    assert list(zip(helpful.chosen, helpful.rejected)) == [("A", "B"), ("A", "C")]  # B = C: tie dropped


def test_helpsteer_scores_and_pairs(source_files):
    data = load_source("nvidia/HelpSteer", source_files["helpsteer"])
    assert data.responses.objectives == ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]
    np.testing.assert_array_equal(data.responses.scores[1], [4, 3, 4, 2, 3])
    counts = {o: data.pairs.objective.count(o) for o in data.responses.objectives}
    # r0=(2,3,4,1,1) r1=(4,3,4,2,3) r2=(1,2,4,0,0): correctness ties r0/r1, coherence ties everywhere
    assert counts == {"helpfulness": 3, "correctness": 2, "coherence": 0, "complexity": 3, "verbosity": 3}
    assert count_conflicts(data.pairs) == 0
    rain = format_prompt("Explain rain.", "hh")
    assert data.golden[rain] == "Clouds condense water vapour into drops that fall."
    margin = load_source("helpsteer", source_files["helpsteer"] + "?min_margin=1")
    assert len(margin.pairs) == 5  # differences strictly above 1 only


def test_summarize_from_feedback(source_files):
    data = load_source("summarize", source_files["summarize"])
    post = "My cat knocked over a glass every morning for a week."
    prompt = format_prompt(post, "summary")
    assert list(zip(data.pairs.prompts, data.pairs.chosen, data.pairs.rejected))[:2] == [
        (prompt, "Cat breaks glasses.", "Cat."), (prompt, "A cat and glasses", "Cat.")]
    assert len(data.responses) == 5  # "Cat." appears twice for the same post: kept once
    assert data.golden[prompt] == "Cat breaks glasses."
    short = load_source("summarize", source_files["summarize"] + "?min_post_chars=10&template=tldr")
    assert len(short.pairs) == 2 and short.prompts == [format_prompt(post, "tldr")]


def test_sources_read_parquet_and_saved_folders(source_files, tmp_path):
    import datasets

    table = datasets.load_dataset("json", data_files=source_files["pku-saferlhf"], split="train")
    table.to_parquet(str(tmp_path / "pku.parquet"))
    table.save_to_disk(str(tmp_path / "pku_folder"))
    datasets.DatasetDict({"test": table}).save_to_disk(str(tmp_path / "pku_dict"))
    expected = load_source("pku-saferlhf", source_files["pku-saferlhf"]).pairs.chosen
    assert load_source("pku-saferlhf", str(tmp_path / "pku.parquet")).pairs.chosen == expected
    assert load_source("pku-saferlhf", str(tmp_path / "pku_folder")).pairs.chosen == expected
    assert load_source("pku-saferlhf", str(tmp_path / "pku_dict"), split="test").pairs.chosen == expected


def test_max_samples_keeps_first_rows(source_files):
    assert len(load_source("pku-saferlhf", source_files["pku-saferlhf"], max_samples=1).pairs) == 2


def test_wrong_layout_and_unknown_names(source_files):
    with pytest.raises(DataValidationError, match="missing column 'instruction'"):
        load_source("ultrafeedback", source_files["helpsteer"])
    with pytest.raises(ValueError, match="did you mean 'helpsteer'"):
        get_source("helpster")
    with pytest.raises(ValueError, match="did you mean 'pair_rule'"):
        load_source("ultrafeedback", source_files["ultrafeedback"] + "?pair_rul=all")
    with pytest.raises(ValueError, match="must be a float"):
        load_source("helpsteer", source_files["helpsteer"] + "?min_margin=big")


def test_spec_parsing_and_registry():
    assert split_spec("Anthropic/hh-rlhf?data_dir=harmless-base&objective=h") == (
        "Anthropic/hh-rlhf", {"data_dir": "harmless-base"}, {"objective": "h"})
    assert set(SOURCES) == {"hh-rlhf", "pku-saferlhf", "ultrafeedback", "helpsteer", "summarize", "moalign", "trl"}
    assert get_source("openai/summarize_from_feedback").config == "comparisons"


def test_moalign_source_reads_own_layouts(tmp_path):
    from moalign.data import PairSet, ScoredSet, save_pairs, save_scored

    scored = ScoredSet(["p", "p"], ["a", "b"], np.array([[1.0], [2.0]]), ["x"])
    assert load_source("moalign", str(save_scored(scored, tmp_path / "s.jsonl"))).responses.scores.tolist() == [
        [1.0], [2.0]]
    pairs = PairSet(["p"], ["a"], ["b"], ["x"])
    data = load_source("local", str(save_pairs(pairs, tmp_path / "p.parquet")))
    assert data.pairs.chosen == ["a"] and data.responses.responses == ["a", "b"] and data.golden == {"p": "a"}
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "q1", "golden": "g1"}, {"prompt": "q2",
                                                                                         "golden": "g2"}])
    data = load_source("moalign", prompts)
    assert data.prompts == ["q1", "q2"] and data.golden == {"q1": "g1", "q2": "g2"} and len(data.responses) == 0
