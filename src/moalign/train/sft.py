"""Completion-only supervised fine-tuning on TRL's ``SFTTrainer``.

ParetoHqD (one model per preference, two stages) and Rewards-in-Context (one conditional model, an offline
and an online stage) are both plain SFT on (prompt, response) rows with the loss on response tokens only.
TRL does the work: a ``prompt``/``completion`` dataset with ``completion_only_loss=True`` tokenises
prompt+completion together, finds where the completion starts, appends EOS and masks the prompt to -100.
This module only adds what moalign needs around it:

* one call for full fine-tuning or LoRA, from a base model, a full checkpoint or a saved adapter
  (stage 2 of ParetoHqD and RiC's online stage continue training what an earlier stage saved);
* tokens added to the tokenizer (RiC's ``<rm1_score>``...) get embedding rows, and with LoRA those rows
  are trainable (PEFT's ``trainable_token_indices``), so a conditional adapter can learn what they mean;
* deterministic from a seed; CPU-safe settings (see ``moalign.train.args``);
* a saved adapter names its base as the caller did (``"embedded"``), so the folder stays portable.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from moalign.config import ModelConfig, TrainSettings
from moalign.train.args import check_sharding, training_kwargs

HISTORY_FILE = "history.jsonl"  # the name the preference trainers use (moalign.train.preference_run)


def completion_texts(responses: Sequence[str], separator: str = " ") -> list[str]:
    """Each response as the text that follows the prompt: ``separator + response`` unless it already starts
    with whitespace. HH prompts end with ``"Assistant:"``; the response follows after one space."""
    return [r if (not separator or r[:1].isspace()) else separator + r for r in responses]


def sft_dataset(prompts: Sequence[str], responses: Sequence[str], separator: str = " "):
    """A ``datasets.Dataset`` with TRL's ``prompt`` / ``completion`` columns."""
    from datasets import Dataset

    if len(prompts) != len(responses):
        raise ValueError(f"train_sft: {len(prompts)} prompts but {len(responses)} responses; they must pair up")
    if len(prompts) == 0:
        raise ValueError("train_sft: no training rows; the selection or filter left nothing to train on")
    empty = [i for i, r in enumerate(responses) if not r.strip()]
    if empty:
        raise ValueError(f"train_sft: response at row {empty[0]} is empty ({len(empty)} empty in all); drop them first")
    return Dataset.from_dict({"prompt": list(prompts), "completion": completion_texts(responses, separator)})


def sft_config(settings: TrainSettings, output_dir: str | Path, seed: int):
    """TRL ``SFTConfig`` from moalign's settings: completion-only loss, no packing, CPU-safe."""
    from trl import SFTConfig

    return SFTConfig(
        **training_kwargs(settings, output_dir, seed),
        max_length=settings.max_length,
        completion_only_loss=True,
        packing=False,
        dataset_num_proc=None,
    )


def load_tokenizer_for(model_path: str | None, init_adapter: str | None, model_config: ModelConfig):
    """The tokenizer of a TRL trainer's start: the adapter's own when it saved one (added tokens), else the
    model's (shared by the SFT and the online trainers)."""
    from moalign.models.load import load_tokenizer

    source = init_adapter if init_adapter and (Path(init_adapter) / "tokenizer_config.json").is_file() else model_path
    if source is None:
        raise ValueError("train_sft: pass a tokenizer when the model is passed as an object")
    revision = model_config.revision if source == model_path else None
    return load_tokenizer(source, revision, model_config.trust_remote_code)


def _split_adapter_path(start: Any, init_adapter: str | None) -> tuple[Any, str | None]:
    """A saved adapter folder given as the model means: its base, continuing from that adapter."""
    from moalign.models.load import is_adapter_dir

    if isinstance(start, (str, Path)) and is_adapter_dir(start):
        if init_adapter is not None:
            raise ValueError(f"train_sft: {start} is an adapter folder and init_adapter is also given")
        from moalign.models.adapters import LORA

        return LORA.base_name(start), str(start)
    return start, init_adapter


def prepare_trl_model(model, tokenizer, settings: TrainSettings, init_adapter, trainable_token_ids):
    """Resize for added tokens; wrap a saved adapter to keep training it; else return a PEFT config or None
    (the model and the ``peft_config`` a TRL trainer takes: SFT and online)."""
    from moalign.models.adapters import lora_config

    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer))
    if init_adapter is not None:
        from moalign.models.adapters import LORA

        return LORA.load(model, init_adapter, trainable=True), None  # refuses an SVD-LoRA (Panacea) folder
    peft_config = lora_config(settings.lora)
    if peft_config is not None and trainable_token_ids:
        peft_config.trainable_token_indices = sorted(int(i) for i in trainable_token_ids)
    return model, peft_config


def build_sft_trainer(
    start: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    settings: TrainSettings,
    output_dir: str | Path,
    *,
    seed: int,
    tokenizer=None,
    model_config: ModelConfig | None = None,
    init_adapter: str | Path | None = None,
    separator: str = " ",
    trainable_token_ids: Sequence[int] | None = None,
):
    """The ready-to-train ``SFTTrainer`` (not yet trained); :func:`train_sft` trains and saves it.

    ``start``: a base model (name, folder or ``"embedded"``), a full checkpoint folder, a saved adapter folder
    (training continues from it) or a loaded model (then pass ``tokenizer``). ``init_adapter``: an adapter
    folder to continue training on top of the given base. With neither, ``settings.lora.r > 0`` starts a new
    LoRA. ``model_config`` supplies dtype, revision and ``trust_remote_code`` for loading ``start``.
    """
    from transformers import set_seed
    from trl import SFTTrainer

    from moalign.console import attach_loss_lines
    from moalign.models.load import load_causal_lm
    from moalign.train.checkpoints import CompleteCheckpointMarker

    model_config = model_config or ModelConfig()
    set_seed(seed)  # resized embedding rows and LoRA weights are drawn from the seed
    model, init_adapter = _split_adapter_path(start, None if init_adapter is None else str(init_adapter))
    path = str(model) if isinstance(model, (str, Path)) else None
    if tokenizer is None:
        tokenizer = load_tokenizer_for(path, init_adapter, model_config)
    if path is not None:
        revision = model_config.revision if path == model_config.name_or_path else None
        model = load_causal_lm(path, revision=revision, dtype=model_config.dtype,
                               trust_remote_code=model_config.trust_remote_code)
    model, peft_config = prepare_trl_model(model, tokenizer, settings, init_adapter, trainable_token_ids)
    trainer = SFTTrainer(
        model=model,
        args=sft_config(settings, output_dir, seed),
        train_dataset=sft_dataset(prompts, responses, separator),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=[CompleteCheckpointMarker()],
    )
    trainer.moalign_base_name = _base_name(path, init_adapter)
    return attach_loss_lines(check_sharding(trainer))  # one formatted line per log once the CLI quieted the output


def _base_name(model_path: str | None, init_adapter: str | None) -> str | None:
    """The base a new adapter should name: the base of the adapter it continues, else the model as given."""
    if init_adapter is not None:
        from moalign.models.adapters import LORA

        return LORA.base_name(init_adapter)
    return model_path


def train_sft(
    start: Any,
    prompts: Sequence[str],
    responses: Sequence[str],
    settings: TrainSettings,
    save_dir: str | Path,
    *,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    **kwargs,
) -> Path:
    """Fine-tune on (prompt, response) rows with the loss on response tokens only; return ``save_dir``.

    With ``checkpoint_dir`` the Trainer checkpoints there (every ``settings.save_steps``) and a rerun resumes
    from the newest complete checkpoint, ending with the weights of an uninterrupted run. The folder loads
    with :func:`moalign.models.load.load_policy`; it also holds ``history.jsonl``, the Trainer's log rows
    (loss, learning rate, ... every ``settings.logging_steps``; a resumed run's too). ``kwargs`` go to
    :func:`build_sft_trainer`.
    """
    from moalign.train.checkpoints import last_complete_checkpoint
    from moalign.train.saving import save_policy

    output_dir = checkpoint_dir if checkpoint_dir is not None else save_dir
    trainer = build_sft_trainer(start, prompts, responses, settings, output_dir, seed=seed, **kwargs)
    resume = last_complete_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
    trainer.train(resume_from_checkpoint=resume)
    saved = save_policy(trainer, save_dir, base_name=getattr(trainer, "moalign_base_name", None))
    if trainer.args.should_save:
        rows = "".join(json.dumps(row) + "\n" for row in trainer.state.log_history)
        (saved / HISTORY_FILE).write_text(rows, encoding="utf-8")
    del trainer
    return saved
