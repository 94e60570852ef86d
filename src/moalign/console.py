"""What a ``moalign`` command prints: one progress bar per stage, one readable line per training log.

The command line calls :func:`quiet_libraries` once (unless ``-v/--verbose``); the library API is untouched
unless a program calls it too. Quieted:

* the libraries' own progress bars: ``datasets`` (every ``map``/``filter``: TRL's "Tokenizing train dataset",
  "Adding EOS" ...) and transformers' "Loading weights" / "Writing model shards". The Hub's download bars stay
  (a download can take minutes). A progress variable the user set in the environment wins
  (``HF_DATASETS_DISABLE_PROGRESS_BARS``);
* moalign's nested per-preference bars of an evaluation (generating, scoring): the "preferences" bar is the
  stage bar (:func:`nested_progress`);
* the Trainer's raw log dict (``{'loss': '0.2582', 'grad_norm': ...}``): trainers built by moalign's
  builders print :func:`format_log_line` instead (:func:`attach_loss_lines`); the Trainer's tqdm bar stays as
  the training stage's bar. Every logged value is still in the stage's ``history.jsonl``;
* the known-harmless warnings in :data:`HARMLESS_WARNINGS`, each matched by its exact message (never a
  whole category or library).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from transformers.trainer_callback import PrinterCallback, ProgressCallback, TrainerCallback

# (message regex, category, module regex, why it is harmless). Matched with warnings.filterwarnings, so
# another message of the same category or library still shows.
HARMLESS_WARNINGS: tuple[tuple[str, type[Warning], str, str], ...] = (
    (r"`is_gradient_checkpointing` is deprecated", FutureWarning, r"transformers\.modeling_utils",
     "PEFT (peft_model.py) and TRL read the model's deprecated property is_gradient_checkpointing, which "
     "returns is_activation_checkpointing's value; nothing moalign can change, nothing behaves differently"),
    (r"Setting `save_embedding_layers` to `True` as the embedding layer has been resized", UserWarning,
     r"peft\.utils\.save_and_load",
     "RiC adds its score tokens and resizes the embeddings; PEFT announces that it therefore saves the "
     "embedding rows with the adapter, which is what makes the saved adapter load with its tokens"),
)

_state = {"quiet": False}


def quiet_libraries() -> None:
    """Quiet the libraries' progress bars and the known-harmless warnings; turn on the formatted loss lines.

    Idempotent. Meant for the command line (``cli.main`` calls it unless ``-v``); a program may call it too.
    """
    import transformers.utils.logging as hf_logging
    from datasets.utils import disable_progress_bars as disable_datasets_bars
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    if "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ:
        disable_datasets_bars()
    hub_bars_off = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # "Loading weights", "Writing model shards" (also turns the Hub's off)
    if not hub_bars_off:
        enable_progress_bars()  # keep the download bars as they were
    for message, category, module, _why in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    _state["quiet"] = True


@contextmanager
def quiet_output() -> Iterator[None]:
    """:func:`quiet_libraries` for the duration of the block; the bars, warning filters and loss-line switch
    are then as they were (``cli.main`` runs each verb in one, so calls in one process do not leak)."""
    import transformers.utils.logging as hf_logging
    from datasets.utils import enable_progress_bars as enable_datasets_bars
    from datasets.utils import is_progress_bar_enabled as datasets_bars_on
    from huggingface_hub.utils import are_progress_bars_disabled
    from huggingface_hub.utils import disable_progress_bars as disable_hub_bars

    saved = datasets_bars_on(), hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled(), is_quiet()
    try:
        with warnings.catch_warnings():
            quiet_libraries()
            yield
    finally:
        datasets_on, transformers_on, hub_off, _state["quiet"] = saved
        if datasets_on and not datasets_bars_on():
            enable_datasets_bars()
        if transformers_on:
            hf_logging.enable_progress_bar()
        if hub_off and not are_progress_bars_disabled():
            disable_hub_bars()


def echo(text: str) -> None:
    """Print one line above any open progress bar (``tqdm.write``), so a bar and a stage's message do not
    share a line; a run's stage messages go through it (``Run(..., echo=echo)``)."""
    from tqdm.auto import tqdm

    tqdm.write(text)


def is_quiet() -> bool:
    """True once :func:`quiet_libraries` ran (the command line without ``-v``)."""
    return _state["quiet"]


def nested_progress(enabled: bool) -> bool:
    """Whether a bar nested inside a stage's own bar (one per preference point) is shown: only when verbose."""
    return enabled and not is_quiet()


# ----------------------------------------------------------------------------------------------------------
# Loss lines
# ----------------------------------------------------------------------------------------------------------


def format_number(value: float) -> str:
    """3 significant digits (``0.2582`` -> ``0.258``, ``12.34`` -> ``12.3``); below 1e-3 or from 1e4 in
    scientific form with a short exponent (``1.683e-05`` -> ``1.68e-5``)."""
    if not math.isfinite(value) or value == 0:
        return f"{value:g}"
    if 1e-3 <= abs(value) < 1e4:
        return f"{value:.3g}"
    return _short_exponent(f"{value:.2e}")


def format_lr(value: float) -> str:
    """A learning rate in 2 significant digits, scientific (``0.001683`` -> ``1.7e-3``; ``0`` -> ``0``)."""
    return "0" if value == 0 else _short_exponent(f"{value:.1e}")


def _short_exponent(text: str) -> str:
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def format_log_line(logs: Mapping[str, float], step: int, max_steps: int) -> str:
    """One line for one Trainer log.

    A training log: ``  step 20/120  loss 0.258  positivity 0.236  brevity 0.289  lr 1.7e-3``: the total
    loss, each objective's loss (the ``loss/<objective>`` keys, in the order the trainer logged them, which is
    the run's objective order) and the learning rate; numbers by :func:`format_number` / :func:`format_lr`.
    The end-of-training summary: ``  trained 120 steps in 24.6 s  mean loss 0.253``. Any other log (e.g. an
    evaluation): its numeric values by :func:`format_number`. The full dicts are in ``history.jsonl``
    (``-v`` prints them).
    """
    if "train_runtime" in logs:
        line = f"  trained {step} steps in {logs['train_runtime']:.1f} s"
        return line + (f"  mean loss {format_number(logs['train_loss'])}" if "train_loss" in logs else "")
    parts = [f"  step {step}/{max_steps}"]
    if "loss" in logs:
        parts.append(f"loss {format_number(logs['loss'])}")
        parts += [f"{key[len('loss/'):]} {format_number(value)}" for key, value in logs.items()
                  if key.startswith("loss/")]
        if "learning_rate" in logs:
            parts.append(f"lr {format_lr(logs['learning_rate'])}")
    else:
        parts += [f"{key} {format_number(value)}" for key, value in logs.items()
                  if isinstance(value, (int, float)) and key != "total_flos"]
    return "  ".join(parts)


class LossLines(TrainerCallback):
    """Prints :func:`format_log_line` for every log (main process only), above the progress bar."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            echo(format_log_line(logs, state.global_step, state.max_steps))


class _ProgressBarOnly(ProgressCallback):
    """The Trainer's progress bar without its raw log dict (:class:`LossLines` prints the logs)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


def attach_loss_lines(trainer):
    """After :func:`quiet_libraries`: the trainer prints :class:`LossLines` instead of the raw dict (its
    ``ProgressCallback``'s bar stays; a ``PrinterCallback``, with ``disable_tqdm``, goes). Otherwise the
    trainer is left as built. Returns ``trainer``."""
    if not is_quiet() or any(isinstance(cb, LossLines) for cb in trainer.callback_handler.callbacks):
        return trainer
    bar = trainer.pop_callback(ProgressCallback)
    trainer.pop_callback(PrinterCallback)
    if bar is not None:
        trainer.add_callback(_ProgressBarOnly())
    trainer.add_callback(LossLines())
    return trainer
