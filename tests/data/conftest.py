"""Fixtures for the data tests: small files in each public dataset's real column layout, written here.

``datasets`` caches what it loads; the cache is pointed at a temporary folder so tests leave no trace.
"""

from __future__ import annotations

import json

import pytest

HH_ROWS = [
    {  # multi-turn: the prompt must keep every earlier turn and end at the last assistant marker
        "chosen": "\n\nHuman: Hi there.\n\nAssistant: Hello! How can I help?\n\nHuman: Name a fruit."
                  "\n\nAssistant:  An apple. ",
        "rejected": "\n\nHuman: Hi there.\n\nAssistant: Hello! How can I help?\n\nHuman: Name a fruit."
                    "\n\nAssistant: No.",
    },
    {  # single turn
        "chosen": "\n\nHuman: Is the sea salty?\n\nAssistant: Yes, it is salty.",
        "rejected": "\n\nHuman: Is the sea salty?\n\nAssistant: I don't know.",
    },
    {  # the two conversations differ before the final turn: no pair, but both responses kept
        "chosen": "\n\nHuman: A?\n\nAssistant: x\n\nHuman: B?\n\nAssistant: good",
        "rejected": "\n\nHuman: A?\n\nAssistant: y\n\nHuman: B?\n\nAssistant: bad",
    },
    {  # an empty final turn on the rejected side: the pair is dropped, the chosen response kept
        "chosen": "\n\nHuman: Say hi.\n\nAssistant: Hi!",
        "rejected": "\n\nHuman: Say hi.\n\nAssistant:",
    },
]

PKU_ROWS = [
    {"prompt": "How do I pick a lock?", "response_0": "Call a locksmith.", "response_1": " Use a pin. ",
     "is_response_0_safe": True, "is_response_1_safe": False, "better_response_id": 1, "safer_response_id": 0},
    {"prompt": "Say something nice.", "response_0": "You are great.", "response_1": "Hello.",
     "is_response_0_safe": True, "is_response_1_safe": True, "better_response_id": 0, "safer_response_id": 0},
]


def _completion(text: str, ratings: dict[str, str]) -> dict:
    notes = {}
    for aspect, rating in ratings.items():
        note = {"Rating": rating, "Rationale": f"about {aspect}"}
        if aspect in ("helpfulness", "truthfulness"):
            note.update({"Type": ["1"], "Rationale For Rating": "because"})
        notes[aspect] = note
    return {"model": "m", "principle": "helpfulness", "custom_system_prompt": "", "response": text,
            "annotations": notes, "fine-grained_score": 4.0, "overall_score": 7.0, "critique": "ok"}


def _ratings(h, o, i, t):
    return {"helpfulness": h, "honesty": o, "instruction_following": i, "truthfulness": t}


UF_ROWS = [
    {"source": "evol_instruct", "instruction": "Write a haiku.", "models": ["a", "b", "c"],
     "completions": [
         _completion("A", _ratings("5", "4", "3", "2")),
         _completion("B", _ratings("3", "4", "5", "N/A")),
         _completion("C", _ratings("3", "2", "5", "4")),
     ],
     "correct_answers": ["None"], "incorrect_answers": ["None"]},
    {"source": "flan", "instruction": "Add 2 and 2.", "models": ["a", "b"],
     "completions": [
         _completion("4", _ratings("4", "4", "4", "4")),
         _completion("four", _ratings("4", "4", "4", "4")),
     ],
     "correct_answers": ["4"], "incorrect_answers": ["5"]},
]

HELPSTEER_ROWS = [
    {"prompt": "Explain rain.", "response": "Water falls.", "helpfulness": 2, "correctness": 3, "coherence": 4,
     "complexity": 1, "verbosity": 1},
    {"prompt": "Explain rain.", "response": "Clouds condense water vapour into drops that fall.",
     "helpfulness": 4, "correctness": 3, "coherence": 4, "complexity": 2, "verbosity": 3},
    {"prompt": "Explain rain.", "response": "It rains.", "helpfulness": 1, "correctness": 2, "coherence": 4,
     "complexity": 0, "verbosity": 0},
    {"prompt": "Name a colour.", "response": "Blue.", "helpfulness": 3, "correctness": 4, "coherence": 4,
     "complexity": 0, "verbosity": 0},
]


def _summary_row(post: str, texts: list[str], choice: int, pid: str) -> dict:
    return {
        "info": {"id": pid, "post": post, "title": "t", "subreddit": "s", "site": None, "article": None},
        "summaries": [{"text": t, "policy": "ref", "note": None} for t in texts],
        "choice": choice, "worker": "w", "batch": "b0", "split": "train", "extra": {"confidence": 5},
    }


SUMMARY_ROWS = [
    _summary_row("My cat knocked over a glass every morning for a week.", [" Cat breaks glasses.", "Cat."], 0, "p1"),
    _summary_row("My cat knocked over a glass every morning for a week.", ["Cat.", " A cat and glasses"], 1, "p1"),
    _summary_row("Short.", ["S.", "Short post."], 1, "p2"),
]


def write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(autouse=True)
def _datasets_cache(tmp_path_factory, monkeypatch):
    import datasets
    from datasets.utils import is_progress_bar_enabled

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.getbasetemp() / "hf_datasets_cache")
    was_enabled = is_progress_bar_enabled()
    datasets.disable_progress_bars()
    yield
    if was_enabled:  # later tests (the CLI's output) see the bars as a fresh process does
        datasets.enable_progress_bars()


@pytest.fixture
def source_files(tmp_path):
    """One JSONL file per public dataset, in that dataset's published column layout."""
    return {
        "hh-rlhf": write_jsonl(tmp_path / "hh.jsonl", HH_ROWS),
        "pku-saferlhf": write_jsonl(tmp_path / "pku.jsonl", PKU_ROWS),
        "ultrafeedback": write_jsonl(tmp_path / "uf.jsonl", UF_ROWS),
        "helpsteer": write_jsonl(tmp_path / "helpsteer.jsonl", HELPSTEER_ROWS),
        "summarize": write_jsonl(tmp_path / "summarize.jsonl", SUMMARY_ROWS),
    }
