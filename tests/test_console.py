"""What a command prints (moalign.console): the loss-line format, the targeted warning filters, and that the
quieting is undone after each command and absent from the library API."""

import warnings

import pytest

from moalign import console
from moalign.console import format_log_line, format_lr, format_number, quiet_output

# a preference trainer's log (moalign.train.preference: loss/<objective>, weight/<objective>, w/<objective>)
LOG = {"loss": 0.2582, "grad_norm": 0.1476, "learning_rate": 0.001683, "loss/positivity": 0.23576,
       "weight/positivity": 0.555, "w/positivity": 0.555, "loss/brevity": 0.28949, "weight/brevity": 0.445,
       "w/brevity": 0.445, "epoch": 0.31}


def test_a_training_log_is_one_line_with_each_objectives_loss_in_order():
    assert format_log_line(LOG, 20, 120) == "  step 20/120  loss 0.258  positivity 0.236  brevity 0.289  lr 1.7e-3"
    swapped = {"loss": 0.2582, "loss/brevity": 0.28949, "loss/positivity": 0.23576, "learning_rate": 0.0}
    assert format_log_line(swapped, 5, 9) == "  step 5/9  loss 0.258  brevity 0.289  positivity 0.236  lr 0"
    # an SFT log (TRL): no objectives; its extra keys stay in history.jsonl
    sft = {"loss": 5.713, "grad_norm": 1.03, "learning_rate": 0.000375, "entropy": 5.7, "mean_token_accuracy": 0.0}
    assert format_log_line(sft, 2, 4) == "  step 2/4  loss 5.71  lr 3.8e-4"


def test_the_end_of_training_summary_and_other_logs():
    end = {"train_runtime": 24.58, "train_samples_per_second": 39.05, "train_loss": 0.25281, "epoch": 0.77}
    assert format_log_line(end, 120, 120) == "  trained 120 steps in 24.6 s  mean loss 0.253"
    assert format_log_line({"eval_loss": 1.23456, "total_flos": 9e9, "note": "x"}, 3, 9) == "  step 3/9  eval_loss 1.23"


@pytest.mark.parametrize("value, text", [(0.2582, "0.258"), (12.34, "12.3"), (1.683e-5, "1.68e-5"),
                                         (123456.0, "1.23e5"), (0.0, "0"), (-0.5, "-0.5"), (float("nan"), "nan")])
def test_numbers_keep_three_significant_digits(value, text):
    assert format_number(value) == text


def test_learning_rates_are_scientific_with_two_digits():
    assert [format_lr(v) for v in (0.001683, 1.667e-05, 0.02, 0.0)] == ["1.7e-3", "1.7e-5", "2.0e-2", "0"]


def _warn(message: str, module: str, category=FutureWarning) -> list[str]:
    """The messages recorded when ``module`` warns ``message`` (a fresh registry: the filters decide)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.warn_explicit(message, category, f"{module.replace('.', '/')}.py", 1, module=module, registry={})
    return [str(w.message) for w in caught]


def test_only_the_listed_warnings_are_silenced_and_only_inside_the_block():
    deprecated = "`is_gradient_checkpointing` is deprecated and will be removed in v6. Use `is_activation_checkpointing`"
    other = "`something_else` is deprecated and will be removed in v6."
    with quiet_output():
        assert console.is_quiet()
        assert _warn(deprecated, "transformers.modeling_utils") == []
        assert _warn(other, "transformers.modeling_utils") == [other]  # the same category and library still shows
        assert _warn(deprecated, "my_module") == [deprecated]  # the same text from elsewhere still shows
    assert not console.is_quiet()
    assert _warn(deprecated, "transformers.modeling_utils") == [deprecated]  # restored after the block


def test_progress_bars_are_off_inside_the_block_and_restored_after():
    from datasets.utils import is_progress_bar_enabled as datasets_bars
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils.logging import is_progress_bar_enabled as transformers_bars

    before = datasets_bars(), transformers_bars(), are_progress_bars_disabled()
    assert before == (True, True, False)
    with quiet_output():
        assert not datasets_bars() and not transformers_bars()
        assert not are_progress_bars_disabled()  # the Hub's download bars stay
    assert (datasets_bars(), transformers_bars(), are_progress_bars_disabled()) == before


def _callbacks(trainer) -> list[type]:
    return [type(cb) for cb in trainer.callback_handler.callbacks]


def test_loss_lines_replace_the_raw_dict_only_when_quieted(tiny_lm_dir, tmp_path):
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)

    def trainer(disable_tqdm: bool):
        args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], disable_tqdm=disable_tqdm)
        return console.attach_loss_lines(Trainer(model=model, args=args))

    assert ProgressCallback in _callbacks(trainer(False))  # the library API: left as transformers built it
    assert console.LossLines not in _callbacks(trainer(False))
    with quiet_output():
        quiet = _callbacks(console.attach_loss_lines(trainer(False)))  # attached twice: still one of each
        printer = _callbacks(trainer(True))
    assert ProgressCallback not in quiet and quiet.count(console.LossLines) == 1
    assert quiet.count(console._ProgressBarOnly) == 1
    assert PrinterCallback not in printer and console.LossLines in printer and console._ProgressBarOnly not in printer
