"""RiC's pure pieces against hand-computed numbers and against literals that the official code
(YangRui2015/RiC at aee53a6: ``ric/prepare_dataset_with_rewards.py``, ``ric/utils.py``, ``ric/evaluation.py``)
produced when run on the same inputs (spec sections 1 and 11; issue 12, items 10-12)."""

import numpy as np
import pytest

from moalign.config import ConfigError, RunConfig, load_run_config
from moalign.methods.ric.conditioning import (
    any_quantile_mask,
    condition_prompt,
    format_score,
    gaussian_range,
    is_bad_sample,
    map_preference,
    mors_targets,
    reference_ranges,
    strip_assistant_tag,
)
from moalign.methods.ric.config import OnlineSettings, RicConfig
from moalign.rewards.normalize import fit_ric_stats, ric_normalize

TAG = "\n\nAssistant:"


def test_conditioned_string_is_exact():
    # official: the conversation, two spaces (RiC's builder adds one before the tag, rstrip stops there, then
    # one more), str(round(s, 1)) with Python's round: -0.04 -> "-0.0", 0.35 (0.34999...) -> "0.3"
    prompt = "\n\nHuman: Is it cold?\n\nAssistant:"
    assert condition_prompt(prompt, [1.23, -0.04]) == (
        "\n\nHuman: Is it cold?  <rm1_score> 1.2 <rm2_score> -0.0 \n\nAssistant:"
    )
    three = condition_prompt(prompt, [4.0, -4.25, 0.35])
    assert three == "\n\nHuman: Is it cold?  <rm1_score> 4.0 <rm2_score> -4.2 <rm3_score> 0.3 \n\nAssistant:"
    # the former default is the "clean" style: exact suffix, one space, "-0.0" written "0.0"
    assert condition_prompt(prompt, [1.23, -0.04], style="clean") == (
        "\n\nHuman: Is it cold? <rm1_score> 1.2 <rm2_score> 0.0 \n\nAssistant:"
    )


def test_normalisation_rounds_before_and_after_then_conditions():
    # raw rounded to 0.1 first: col 1 -> [1.0, 3.0, 2.0], col 2 -> [0.0, 1.0, 2.0]; population std = sqrt(2/3)
    raw = np.array([[1.04, 0.0], [2.96, 1.0], [2.0, 2.04]])
    stats = fit_ric_stats(raw, ["a", "b"])
    np.testing.assert_allclose(stats.mean, [2.0, 1.0])
    np.testing.assert_allclose(stats.std, [np.sqrt(2 / 3)] * 2)
    labels = ric_normalize(raw, stats)  # (1 - 2) / 0.8165 = -1.2247 -> -1.2
    np.testing.assert_array_equal(labels, [[-1.2, -1.2], [1.2, 0.0], [0.0, 1.2]])
    text = condition_prompt("\n\nHuman: Hi.\n\nAssistant:", labels[0])
    assert text == "\n\nHuman: Hi.  <rm1_score> -1.2 <rm2_score> -1.2 \n\nAssistant:"


def test_suffix_removal_and_the_rstrip_quirk():
    prompt = "\n\nHuman: say hi\n\nAssistant:"
    assert strip_assistant_tag(prompt, style="clean") == "\n\nHuman: say hi"
    # official: RiC's builder writes "say hi \n\nAssistant:", whose space stops the strip: no letter is lost
    assert strip_assistant_tag(prompt) == "\n\nHuman: say hi "
    # str.rstrip on the prompt as given strips the character set {\n, A, s, i, t, a, n, :}: "hi" -> "h"
    assert strip_assistant_tag(prompt, style="rstrip") == "\n\nHuman: say h"
    # the rstrip style on a prompt RiC's builder already wrote gives RiC's string
    hh = "\n\nHuman: Why? \n\nAssistant:"
    assert condition_prompt(hh, [0.5, 1], style="rstrip") == (
        "\n\nHuman: Why?  <rm1_score> 0.5 <rm2_score> 1.0 \n\nAssistant:"
    )
    for style in ("official", "clean"):
        with pytest.raises(ValueError, match="assistant_tag"):
            strip_assistant_tag("\n\nHuman: no tag here", style=style)
    with pytest.raises(ValueError, match="prompt_style"):
        condition_prompt(prompt, [1.0], style="quirky")


def test_format_score():
    assert format_score(-0.04) == "-0.0"  # RiC's str(round(x, 1)); about 1% of z-labels
    assert format_score(-0.04, signed_zero=False) == "0.0"
    assert format_score(2) == "2.0"
    assert format_score(-1.26) == "-1.3"
    # Python's round reads the binary value: 0.45 is 0.4500000000000000111 -> 0.5, -0.05 -> -0.1 (np.round:
    # 0.4 and -0.0); values np.round already rounded come back unchanged
    assert [format_score(v) for v in (0.45, -0.05, 0.05, 0.25)] == ["0.5", "-0.1", "0.1", "0.2"]
    assert all(format_score(v) == str(v) for v in np.round(np.linspace(-4.3, 4.3, 87), 1))


# (conversation in the data, labels (unrounded z), RiC's training string prompt_with_score + " " + response),
# from ric/prepare_dataset_with_rewards.py's tokenize + add_score_assistant
OFFICIAL_TRAINING = [
    ("\n\nHuman: say hi\n\nAssistant: hi!", [0.5, 1.0],
     "\n\nHuman: say hi  <rm1_score> 0.5 <rm2_score> 1.0 \n\nAssistant: hi!"),
    ("\n\nHuman: a\n\nAssistant: b\n\nHuman: c \n\nAssistant:  d  ", [0.35, 0.45],
     "\n\nHuman: a\n\nAssistant: b\n\nHuman: c   <rm1_score> 0.3 <rm2_score> 0.5 \n\nAssistant: d"),
    ("\n\nHuman: Why?\n\nAssistant: Because.", [-0.05, 0.05],
     "\n\nHuman: Why?  <rm1_score> -0.1 <rm2_score> 0.1 \n\nAssistant: Because."),
    ("\n\nHuman: Why?\n\nAssistant: Because.", [-0.04999, 0.25],
     "\n\nHuman: Why?  <rm1_score> -0.0 <rm2_score> 0.2 \n\nAssistant: Because."),
]


@pytest.mark.parametrize(("conversation", "labels", "official"), OFFICIAL_TRAINING)
def test_training_string_is_ric_byte_for_byte(conversation, labels, official):
    from moalign.data.sources.hh_rlhf import split_conversation
    from moalign.train.sft import completion_texts

    prompt, response = split_conversation(conversation)
    assert condition_prompt(prompt, labels) + completion_texts([response])[0] == official


def test_summary_string_is_ric_byte_for_byte():
    """Summary prompts end in '### Response: ': RiC's rstrip applies to them as they are and eats the trailing
    letters of the post that are in {#, space, R, e, s, p, o, n, :} ("response" -> "r")."""
    from moalign.data.templates import format_prompt

    tag = "### Response:"
    head = "### Instruction: Generate a one-sentence summary of this post. ### Input: "
    assert condition_prompt(format_prompt("My post about a response", "summary"), [0.123, -0.01], tag) == (
        head + "My post about a r <rm1_score> 0.1 <rm2_score> -0.0 ### Response:"
    )
    assert condition_prompt(format_prompt("My post ends in a dot.", "summary"), [0.123, -0.01], tag) == (
        head + "My post ends in a dot. <rm1_score> 0.1 <rm2_score> -0.0 ### Response:"
    )


def test_online_string_is_ric_byte_for_byte():
    """ric/utils.py dataset_from_csv_n re-reads the prompt of a generated sample (get_prompt rstrips it):
    whitespace at the end of the conversation goes; labels are np.round'ed z-scores, '-0.0' kept."""
    trailing = "\n\nHuman: a\n\nAssistant: b\n\nHuman: c \n\nAssistant:"
    assert condition_prompt(trailing, [-0.0, 0.3], online=True) == (
        "\n\nHuman: a\n\nAssistant: b\n\nHuman: c  <rm1_score> -0.0 <rm2_score> 0.3 \n\nAssistant:"
    )
    assert condition_prompt("\n\nHuman: say hi please\n\nAssistant:", [0.5, -1.0], online=True) == (
        "\n\nHuman: say hi please  <rm1_score> 0.5 <rm2_score> -1.0 \n\nAssistant:"
    )
    assert condition_prompt(trailing, [-0.0, 0.3], style="clean", online=True) == condition_prompt(
        trailing, [-0.0, 0.3], style="clean")


@pytest.mark.parametrize(
    ("mapping", "w", "expected"),
    [
        ("linf", [0.3, 0.7], [0.8, 4.0]),  # top weight -> high; other: min(2*0.3, 1)*8 - 4
        ("linf", [0.5, 0.5], [4.0, 4.0]),  # tie: the first is "top"; the other min(1, 1)*8 - 4
        ("linf", [1.0, 0.0], [4.0, -4.0]),
        ("linf", [0.2, 0.2, 0.6], [0.8, 0.8, 4.0]),  # min(3*0.2, 1)*8 - 4
        ("l2", [0.6, 0.8], [0.8, 2.4]),  # ||w|| = 1
        ("l2", [0.3, 0.7], [-0.8, 3.4]),  # 0.3/0.76158*8-4 = -0.849; 0.7/0.76158*8-4 = 3.353
        ("linear", [0.3, 0.7], [-1.6, 1.6]),
    ],
)
def test_preference_mappings(mapping, w, expected):
    np.testing.assert_allclose(map_preference(w, mapping, -4.0, 4.0), expected)


def test_mapping_with_per_objective_range_and_bad_name():
    np.testing.assert_allclose(map_preference([0.5, 0.5], "linear", [-2.0, -4.0], [2.0, 4.0]), [0.0, 0.0])
    with pytest.raises(ValueError, match="linf, l2, linear"):
        map_preference([0.5, 0.5], "softmax", -1, 1)


class FixedRng:
    def __init__(self, values):
        self.values = np.asarray(values)

    def random(self, shape):
        assert shape == self.values.shape
        return self.values


def test_mors_targets_one_random_coordinate_rest_high():
    goals = mors_targets(2, 2, -4.0, 4.0, FixedRng([[0.1, 0.9], [0.75, 0.25]]))
    # draws: (-3.2, 3.2) and (2.0, -2.0); the smallest keeps its draw, the other becomes high
    np.testing.assert_allclose(goals, [[-3.2, 4.0], [4.0, -2.0]])
    many = mors_targets(500, 3, -4.2, 4.3, np.random.default_rng(0))
    assert np.all((many >= -4.2) & (many <= 4.3))
    assert np.all(np.sum(many == 4.3, axis=1) >= 2)  # at least k-1 coordinates at the maximum
    np.testing.assert_allclose(many, np.round(many, 1))


def test_any_objective_quantile_filter_is_or():
    scores = np.array([[0, 5], [1, 1], [2, 2], [3, 3], [4, 4]], dtype=float)
    # 0.7-quantiles (linear): column 1 -> 2.8, column 2 ([1,2,3,4,5]) -> 3.8
    np.testing.assert_array_equal(any_quantile_mask(scores, 0.7), [True, False, False, True, True])


def test_bad_samples_and_gaussian_range():
    assert is_bad_sample("well.....") and is_bad_sample(":) ok :) yes :)")
    assert not is_bad_sample("fine :) :)")
    low, high = gaussian_range(50000, 8888)
    assert -5 < low < -3.5 and 3.5 < high < 5
    assert low == round(low, 1) and high == round(high, 1)
    assert gaussian_range(50000, 8888) == (low, high)


# ric/evaluation.py: set_seed(8888); [np.random.randn(50000) for each objective]; map_rewards_from_preference(
# ..., method="l2") with each objective's own unrounded min/max; printed by the official function
OFFICIAL_RANGES = ([-3.8655593314901386, -4.03800553045237, -3.995893580968707],
                   [4.056527211674446, 4.165663469400249, 4.43345452693693])
OFFICIAL_L2_TARGETS_2 = [[-3.9, 4.2], [-3.0, 4.1], [-1.9, 3.9], [-0.7, 3.5], [0.5, 2.8], [1.7, 1.8], [2.7, 0.5],
                         [3.4, -0.8], [3.8, -2.0], [4.0, -3.1], [4.1, -4.0]]
OFFICIAL_L2_TARGETS_3 = {(0.0, 0.0, 1.0): [-3.9, -4.0, 4.4], (0.2, 0.4, 0.4): [-1.2, 1.4, 1.6],
                         (0.33, 0.33, 0.33): [0.7, 0.7, 0.9], (0.6, 0.2, 0.2): [3.3, -1.6, -1.5],
                         (1.0, 0.0, 0.0): [4.1, -4.0, -4.0]}


def _family(objectives: list[str], method: RicConfig):
    from moalign.methods.ric.family import RicFamily
    from moalign.methods.ric.pipeline import target_range

    config = RunConfig(method=method)
    config.task.objectives = objectives
    config.task.rewards = objectives
    low, high = target_range(config, run=None)  # "gaussian" needs no run data
    return RicFamily("unused", method.mapping, low, high, prompt_style=method.prompt_style)


def test_evaluation_targets_are_rics_per_objective_unrounded_ranges():
    low, high = reference_ranges(3)
    assert (low, high) == OFFICIAL_RANGES
    two = _family(["a", "b"], RicConfig())
    assert (two.low, two.high) == (OFFICIAL_RANGES[0][:2], OFFICIAL_RANGES[1][:2])
    grid = np.round(np.stack([np.arange(0, 1.1, 0.1), 1 - np.arange(0, 1.1, 0.1)], axis=1), 1)
    assert [two.targets(w).tolist() for w in grid] == OFFICIAL_L2_TARGETS_2
    three = _family(["a", "b", "c"], RicConfig())
    assert {w: three.targets(np.array(w)).tolist() for w in OFFICIAL_L2_TARGETS_3} == OFFICIAL_L2_TARGETS_3
    # ric/utils.py build_dataset_with_preference_n writes them into the HH test prompt like this
    assert two.format_prompt("\n\nHuman: Is it cold today?\n\nAssistant:", grid[5]) == (
        "\n\nHuman: Is it cold today?  <rm1_score> 1.7 <rm2_score> 1.8 \n\nAssistant:"
    )


def test_a_target_rounding_to_zero_is_written_0_0_as_in_rics_evaluation():
    # RiC adds the targets to a column of zeros: 0.0 + -0.0 = 0.0, so its evaluation prompts say "0.0"
    t = map_preference([0.5, 0.5], "linear", [-1.08, -1.0], [1.0, 1.0])  # -0.04 -> -0.0
    assert t.tolist() == [0.0, 0.0] and not np.signbit(t).any()
    assert condition_prompt("\n\nHuman: x\n\nAssistant:", t) == "\n\nHuman: x  <rm1_score> 0.0 <rm2_score> 0.0 \n\nAssistant:"


# ---- the offline and online stages hand RiC's strings (and tokenizer) to SFT ----------------------------------

CONVERSATIONS = ["\n\nHuman: Is it cold?\n\nAssistant: It is.", "\n\nHuman: say hi\n\nAssistant: hi!",
                 "\n\nHuman: a\n\nAssistant: b\n\nHuman: c \n\nAssistant: d", "\n\nHuman: Why?\n\nAssistant: Because."]
RAW = np.array([[0.0, 3.04], [0.96, -1.0], [2.0, 0.5], [1.1, 0.0]])
# prepare_dataset_with_rewards.py: np.round(raw, 1); z = (r - np.mean) / np.std per column; add_score_assistant
OFFICIAL_OFFLINE = [
    "\n\nHuman: Is it cold?  <rm1_score> -1.4 <rm2_score> 1.6 \n\nAssistant: It is.",
    "\n\nHuman: say hi  <rm1_score> -0.0 <rm2_score> -1.1 \n\nAssistant: hi!",
    "\n\nHuman: a\n\nAssistant: b\n\nHuman: c   <rm1_score> 1.4 <rm2_score> -0.1 \n\nAssistant: d",
    "\n\nHuman: Why?  <rm1_score> 0.1 <rm2_score> -0.4 \n\nAssistant: Because.",
]


class FakeSFT:
    """Stands in for ``moalign.train.sft.train_sft``: records what a stage would train on."""

    def __init__(self):
        self.calls = []

    def __call__(self, start, prompts, responses, settings, save_dir, **kwargs):
        from moalign.train.sft import completion_texts

        self.calls.append({"texts": [p + r for p, r in zip(prompts, completion_texts(responses))], **kwargs})
        return save_dir


def _offline_run(tmp_path, tiny_lm_dir, monkeypatch, **method):
    from moalign.data import save_scored
    from moalign.data.schema import ScoredSet
    from moalign.data.sources.hh_rlhf import split_conversation
    from moalign.methods.offline_data import RESPONSES_FILE
    from moalign.methods.ric.pipeline import offline_stage
    from moalign.pipeline import Run
    from moalign.train import sft

    fake = FakeSFT()
    monkeypatch.setattr(sft, "train_sft", fake)
    config = RunConfig(run_dir=str(tmp_path), method=RicConfig(**method))
    config.task.objectives = config.task.rewards = ["a", "b"]
    config.model.name_or_path = tiny_lm_dir
    run = Run(tmp_path, echo=None)
    prompts, responses = zip(*(split_conversation(c) for c in CONVERSATIONS))
    table = ScoredSet(list(prompts), list(responses), RAW, ["a", "b"])
    run.stage("score", {"test": True}, lambda out: save_scored(table, out / RESPONSES_FILE))
    offline_stage(config, run)
    return config, run, fake


def test_offline_stage_trains_on_rics_strings_with_plain_text_score_tokens(tmp_path, tiny_lm_dir, monkeypatch):
    from moalign.models.load import load_tokenizer

    _, _, fake = _offline_run(tmp_path, tiny_lm_dir, monkeypatch)
    (call,) = fake.calls
    assert call["texts"] == OFFICIAL_OFFLINE
    tokenizer = call["tokenizer"]
    assert call["trainable_token_ids"] is None and "<rm1_score>" not in tokenizer.get_vocab()
    assert len(tokenizer) == len(load_tokenizer(tiny_lm_dir))  # no new rows: RiC writes the tokens as text


def test_new_score_tokens_are_an_option(tmp_path, tiny_lm_dir, monkeypatch):
    _, _, fake = _offline_run(tmp_path, tiny_lm_dir, monkeypatch, add_score_tokens=True)
    (call,) = fake.calls
    tokenizer = call["tokenizer"]
    assert call["trainable_token_ids"] == tokenizer.convert_tokens_to_ids(["<rm1_score>", "<rm2_score>"])
    assert tokenizer.tokenize(OFFICIAL_OFFLINE[0]).count("<rm1_score>") == 1


def test_online_stage_trains_on_rics_online_strings(tmp_path, tiny_lm_dir, monkeypatch):
    from moalign.data import save_scored
    from moalign.data.schema import ScoredSet
    from moalign.methods.ric.pipeline import SAMPLES_FILE, online_train_stage

    online = OnlineSettings(iterations=1, offline_mix=10)
    config, run, fake = _offline_run(tmp_path, tiny_lm_dir, monkeypatch, online=online)
    kept = ScoredSet(["\n\nHuman: a\n\nAssistant: b\n\nHuman: c \n\nAssistant:", "\n\nHuman: say hi please\n\nAssistant:"],
                     ["d e", "hello you"], [[-0.0, 0.3], [0.5, -1.0]], ["a", "b"])
    run.stage("online/iter1-data", {"test": True}, lambda out: save_scored(kept, out / SAMPLES_FILE))
    online_train_stage(config, run, 1)
    texts = fake.calls[-1]["texts"]
    # any objective at or above its 0.7-quantile of the unrounded offline z-scores: rows 0 (b) and 2 (a)
    assert sorted(texts[:-2]) == sorted([OFFICIAL_OFFLINE[0], OFFICIAL_OFFLINE[2]])
    assert texts[-2:] == [  # ric/utils.py dataset_from_csv_n on the same generations
        "\n\nHuman: a\n\nAssistant: b\n\nHuman: c  <rm1_score> -0.0 <rm2_score> 0.3 \n\nAssistant: d e",
        "\n\nHuman: say hi please  <rm1_score> 0.5 <rm2_score> -1.0 \n\nAssistant: hello you",
    ]


# ---- config-time validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("method.prompt_style=quirk", "method.prompt_style"),
        ("method.mapping=softmax", "method.mapping"),
        ("method.target_range=uniform", "method.target_range"),
        ("method.scores_from=labels", "method.scores_from"),
        ("method.assistant_tag=' '", "method.assistant_tag"),
        ("method.reference_draws=1", "method.reference_draws"),
        ("method.reference_seed=-1", "method.reference_seed"),
        ("method.reference_seed=4294967296", "method.reference_seed"),
        ("method.online.iterations=-1", "method.online.iterations"),
        ("method.online.num_prompts=0", "method.online.num_prompts"),
        ("method.online.quantile=1.5", "method.online.quantile"),
        ("method.online.offline_mix=-5", "method.online.offline_mix"),
        ("method.online.target_draws=1", "method.online.target_draws"),
        ("method.online.seed=-2", "method.online.seed"),
    ],
)
def test_bad_ric_settings_fail_when_the_config_is_read(override, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_run_config(None, [override], RicConfig)


def test_ric_config_errors_name_the_choices():
    with pytest.raises(ConfigError, match="official, clean, rstrip"):
        RicConfig(prompt_style="quirk")
    with pytest.raises(ConfigError, match=r"\[0, 1\]"):
        OnlineSettings(quantile=-0.1)
    with pytest.raises(ConfigError, match="true or false"):
        RicConfig(add_score_tokens="yes")
    assert RicConfig().prompt_style == "official" and RicConfig().add_score_tokens is False


def test_a_family_saved_before_prompt_style_keeps_its_strings():
    from moalign.methods.ric.family import RicFamily, family_from_description

    new = RicFamily("m", "l2", [-4.0, -4.0], [4.0, 4.0])
    assert family_from_description(new.describe()).describe() == new.describe()
    old = {k: v for k, v in new.describe().items() if k != "prompt_style"}
    assert family_from_description({**old, "rstrip_quirk": False}).prompt_style == "clean"
    assert family_from_description({**old, "rstrip_quirk": True}).prompt_style == "rstrip"
