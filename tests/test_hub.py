"""Hub ids that cannot load here fail at once with one message naming the setting and the way to a local
copy; local folders and cached ids are untouched."""

from __future__ import annotations

import socket
import time

import pytest

from moalign.cli import main
from moalign.hub import HubUnreachableError, check_hub_source, looks_like_path
from moalign.models.load import load_tokenizer


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """An empty Hugging Face cache, offline mode unset, and a host name that does not resolve."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))

    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)


def test_names_written_as_paths_and_hub_ids():
    assert [looks_like_path(n) for n in ("./m", "/abs/m", "~/m", "a/b/c", "x.jsonl", "gpt2", "Qwen/Qwen2.5-0.5B")] \
        == [True, True, True, True, True, False, False]


def test_an_unreachable_hub_id_fails_at_once_naming_the_setting(no_network):
    start = time.perf_counter()
    with pytest.raises(HubUnreachableError) as err:
        load_tokenizer("someorg/some-model")
    assert time.perf_counter() - start < 5  # not a minute of retries
    message = str(err.value)
    assert "model.name_or_path='someorg/some-model'" in message and "does not resolve" in message
    assert "hf download someorg/some-model --local-dir" in message


def test_offline_mode_and_a_missing_local_path(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnreachableError, match="HF_HUB_OFFLINE is set"):
        check_hub_source("someorg/rm", what="reward model", setting="reward spec 'hf:someorg/rm'")
    with pytest.raises(HubUnreachableError, match="'./models/absent': no such folder"):
        check_hub_source("./models/absent", what="model", setting="model.name_or_path")


def test_a_local_folder_loads_as_before(no_network, tiny_lm_dir):
    check_hub_source(tiny_lm_dir, what="model", setting="model.name_or_path")
    assert load_tokenizer(tiny_lm_dir).pad_token is not None


def test_the_cli_prints_one_line(no_network, tmp_path, capsys):
    code = main(["train", "dpo", "configs/embedded/dpo.yaml", f"run_dir={tmp_path / 'run'}",
                 "model.name_or_path=someorg/some-model"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("moalign train: error: model.name_or_path='someorg/some-model'")
