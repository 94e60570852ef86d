"""Hugging Face reward models, each called with its own input convention.

A reward model is a sequence classifier (or a safe-rlhf score model) that reads a prompt and a response and
returns one number. The models the papers use disagree on *how* the two texts go in (a tokenizer text pair,
one concatenated string, the response alone, the response before the post) and on *which* output is the
reward (logit 0, or class 1 of a two-class head). :class:`HFRewardSpec` writes each choice down, and
:data:`PRESETS` holds the settings of the reward models named in the method specs, with where each came from.

Loading is the real ``from_pretrained`` path: safetensors only (``use_safetensors=True``; checkpoints that ship
only pickled ``.bin`` weights are refused, because unpickling can run code), remote code only when asked, eval
mode, ``torch.no_grad``. Texts are batched with right padding (so a causal model sees the same positions as
without padding) and truncated to ``min(tokenizer max length, max_length=1024)``. A cost enters with
``sign=-1`` because every score is maximised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moalign.config import DTYPE_NAMES  # no torch import here
from moalign.hub import check_hub_source

CONVENTIONS: dict[str, str] = {
    "text_pair": "tokenizer(prompt, response): the two texts as a tokenizer pair",
    "reversed_pair": "tokenizer(response, prompt): response first, prompt as the pair",
    "concat": "tokenizer(prompt + response): one text",
    "response_only": "tokenizer(response): the prompt is ignored",
    "reversed_with_bos": "tokenizer(response + ' ' + bos + ' ' + prompt): RiC's call of the summary RM",
    "chat": "the reward tokenizer's own chat template over the conversation: the prompt's messages, then the "
            "response as the assistant turn",
}
LOADERS: dict[str, str] = {
    "sequence_classification": "AutoModelForSequenceClassification; reward = logits[:, logit]",
    "score_head": "safe-rlhf score model: AutoModel body + saved score_head at the last attended token",
}
_HF_MAX_LENGTH_UNSET = 10**8  # tokenizers without a limit report ~1e30


def _identity(prompt: str, tokenizer: Any) -> str:
    return prompt


def _strip(prompt: str, tokenizer: Any) -> str:
    return prompt.strip()


def summary_post(prompt: str, tokenizer: Any = None) -> str:
    """The post inside a RiC summary prompt (``### Input: {post} [<rm1_score> ...] ### Response:``), stripped.

    Mirrors RiC's ``get_post``: cut at the first score tag if present, else at the last ``### Response:``.
    A prompt without ``### Input:`` is returned stripped, so raw posts work too.
    """
    if "### Input:" not in prompt:
        return prompt.strip()
    body = prompt.split("### Input:", 1)[1]
    if "<rm1_score>" in body:
        body = body.split("<rm1_score>", 1)[0]
    elif "### Response:" in body:
        body = body.rsplit("### Response:", 1)[0]
    return body.strip()


def hh_to_beaver(prompt: str, tokenizer: Any = None) -> str:
    """``\\n\\nHuman: u\\n\\nAssistant:`` -> ``BEGINNING OF CONVERSATION: USER: u ASSISTANT:`` (safe-rlhf format).

    Earlier assistant turns are followed by the tokenizer's EOS, as safe-rlhf's ``format_prompt`` does.
    Prompts not in HH format are returned unchanged (they may already be in beaver format).
    """
    if "\n\nHuman:" not in prompt:
        return prompt
    parts = re.split(r"\n\n(Human|Assistant):", prompt)
    eos = getattr(tokenizer, "eos_token", None) or "</s>"
    out = ["BEGINNING OF CONVERSATION: "]
    for role, text in zip(parts[1::2], parts[2::2]):
        if role == "Human":
            out.append(f"USER: {text.strip()} ASSISTANT:")
        elif text.strip():
            out.append(f"{text.strip()}{eos}")
    return "".join(out)


TRANSFORMS: dict[str, Callable[[str, Any], str]] = {
    "none": _identity,
    "strip": _strip,
    "summary_post": summary_post,
    "hh_to_beaver": hh_to_beaver,
}


@dataclass(frozen=True)
class HFRewardSpec:
    """How to load one reward model and how to call it. See docs/concepts/rewards.md for each field."""

    model: str  # Hub id or local folder
    convention: str = "text_pair"  # key of CONVENTIONS
    logit: int = 0  # which output column is the reward (1 = class 1 of a 2-label head)
    sign: float = 1.0  # -1 for a cost: every score is maximised
    transform: str = "none"  # prompt transform, key of TRANSFORMS
    loader: str = "sequence_classification"  # key of LOADERS
    batch_size: int = 8
    max_length: int = 1024  # also capped by the tokenizer's model_max_length
    revision: str | None = None
    dtype: str = "float32"  # float32 | bfloat16 | float16
    device: str | None = None  # None: cuda if available, else cpu
    trust_remote_code: bool = False
    name: str | None = None  # the reward's name; default: preset name or the model's last path part
    source: str = field(default="", compare=False)  # where the convention was read (documentation only)

    def __post_init__(self) -> None:
        _check_choice("convention", self.convention, CONVENTIONS)
        _check_choice("transform", self.transform, TRANSFORMS)
        _check_choice("loader", self.loader, LOADERS)
        _check_choice("dtype", self.dtype, dict.fromkeys(DTYPE_NAMES))
        if self.sign not in (1.0, -1.0):
            raise ValueError(f"sign={self.sign!r}: use 1 for a reward or -1 for a cost")
        if self.logit < 0:
            raise ValueError(f"logit={self.logit}: give a non-negative output index")
        if self.batch_size < 1 or self.max_length < 2:
            raise ValueError(f"batch_size={self.batch_size}, max_length={self.max_length}: must be >= 1 and >= 2")


def _check_choice(option: str, value: str, choices: dict) -> None:
    if value not in choices:
        raise ValueError(f"{option}={value!r} is not known: choose one of {sorted(choices)}")


_RIC = "RiC ric/multi_reward_models.py + ric/utils.py (YangRui2015/RiC)"
_MODPO = "MODPO scripts/modpo/beavertails/utils/score.py; safe-rlhf ScoreModelMixin (end_scores)"
PRESETS: dict[str, HFRewardSpec] = {
    "hh-harmless": HFRewardSpec("Ray2333/gpt2-large-harmless-reward_model", "text_pair", 0, source=_RIC),
    "hh-helpful": HFRewardSpec("Ray2333/gpt2-large-helpful-reward_model", "text_pair", 0, source=_RIC),
    "humor": HFRewardSpec("mohameddhiab/humor-no-humor", "response_only", 1, source=_RIC),
    "summary": HFRewardSpec(
        "Tristan/gpt2_reward_summarization", "reversed_with_bos", 0, transform="summary_post", source=_RIC
    ),
    "faithful": HFRewardSpec(
        "CogComp/bart-faithful-summary-detector", "reversed_pair", 1, transform="summary_post", source=_RIC
    ),
    "deberta": HFRewardSpec("OpenAssistant/reward-model-deberta-v3-large-v2", "text_pair", 0, source=_RIC),
    "beaver-reward": HFRewardSpec(
        "PKU-Alignment/beaver-7b-v1.0-reward", "concat", 0, transform="hh_to_beaver", loader="score_head",
        batch_size=4, source=_MODPO,
    ),
    "beaver-cost": HFRewardSpec(
        "PKU-Alignment/beaver-7b-v1.0-cost", "concat", 0, sign=-1.0, transform="hh_to_beaver",
        loader="score_head", batch_size=4, source=_MODPO,
    ),
}


def prompt_messages(prompt: str, conversations: dict[str, list[dict]] | None = None) -> list[dict]:
    """The conversation a prompt stands for: the messages it was rendered from (``conversations``, kept by
    the data layer for chat-templated data), else the turns of an HH-format prompt, else one user message.

    >>> prompt_messages("Name a fruit.")
    [{'role': 'user', 'content': 'Name a fruit.'}]
    """
    if conversations and prompt in conversations:
        return [dict(m) for m in conversations[prompt]]
    if "\n\nHuman:" in prompt:
        parts = re.split(r"\n\n(Human|Assistant):", prompt)
        turns = [{"role": "user" if role == "Human" else "assistant", "content": text.strip()}
                 for role, text in zip(parts[1::2], parts[2::2])]
        return [t for t in turns if t["content"] or t["role"] == "user"]
    return [{"role": "user", "content": prompt.strip()}]


def chat_texts(tokenizer: Any, prompts: Sequence[str], responses: Sequence[str],
               conversations: dict[str, list[dict]] | None = None) -> list[str]:
    """Each (prompt, response) as the reward tokenizer's chat template renders the whole conversation."""
    return [tokenizer.apply_chat_template(prompt_messages(p, conversations) + [{"role": "assistant", "content": r}],
                                          tokenize=False)
            for p, r in zip(prompts, responses, strict=True)]


def build_texts(
    convention: str, prompts: Sequence[str], responses: Sequence[str], bos_token: str | None = None
) -> tuple[list[str], list[str] | None]:
    """(texts, text_pairs or None) to hand to the tokenizer for one convention (prompts already transformed)."""
    prompts, responses = list(prompts), list(responses)
    if convention == "text_pair":
        return prompts, responses
    if convention == "reversed_pair":
        return responses, prompts
    if convention == "concat":
        return [p + r for p, r in zip(prompts, responses)], None
    if convention == "response_only":
        return responses, None
    if convention == "reversed_with_bos":
        if not bos_token:
            raise ValueError("convention=reversed_with_bos needs a tokenizer with a bos_token")
        return [f"{r} {bos_token} {p}" for p, r in zip(prompts, responses)], None
    if convention == "chat":
        raise ValueError("convention=chat renders with the reward's tokenizer: use chat_texts")
    _check_choice("convention", convention, CONVENTIONS)
    raise AssertionError("unreachable")


_MODEL_CACHE: dict[tuple, tuple[Any, Any]] = {}


def clear_model_cache() -> None:
    """Forget every loaded reward model (frees their memory once no reward holds them)."""
    _MODEL_CACHE.clear()


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def refuse_pickle_only(path: str) -> None:
    """Raise if a local folder has ``.bin``/``.pt`` weights but no ``.safetensors`` (we never unpickle weights)."""
    folder = Path(path)
    if not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
    if pickles:
        raise ValueError(
            f"{path} holds only pickled weights ({', '.join(pickles)}); moalign loads safetensors only because "
            "unpickling can run arbitrary code. Convert it once, in a trusted environment: "
            "model.save_pretrained(folder, safe_serialization=True)."
        )


def load_reward_backbone(spec: HFRewardSpec) -> tuple[Any, Any]:
    """(model on its device in eval mode, tokenizer with right padding); cached per model/loader/dtype/device."""
    device = spec.device or _default_device()
    key = (spec.model, spec.revision, spec.loader, spec.dtype, device, spec.trust_remote_code)
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = _load_uncached(spec, device)
    return _MODEL_CACHE[key]


def _load_uncached(spec: HFRewardSpec, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from moalign.models.load import DTYPES

    check_hub_source(spec.model, what="reward model", setting=f"reward spec 'hf:{spec.model}'", revision=spec.revision)
    refuse_pickle_only(spec.model)
    extra: dict[str, Any] = {"revision": spec.revision} if spec.revision else {}
    tokenizer = AutoTokenizer.from_pretrained(spec.model, trust_remote_code=spec.trust_remote_code, **extra)
    tokenizer.padding_side = "right"  # causal RMs then see unpadded positions; the score token is found by mask
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if spec.loader == "score_head":
        from moalign.rewards.score_head import load_score_head_model

        model = load_score_head_model(spec.model, spec.revision, DTYPES[spec.dtype], spec.trust_remote_code)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(
            spec.model,
            dtype=DTYPES[spec.dtype],
            use_safetensors=True,
            trust_remote_code=spec.trust_remote_code,
            **extra,
        )
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id  # sequence classifiers find the last token by it
    model.to(device)
    model.eval()
    return model, tokenizer


def num_outputs(model: Any) -> int:
    """How many reward columns the model emits (classifier labels or score-head width)."""
    from moalign.rewards.score_head import EndTokenScoreModel

    if isinstance(model, EndTokenScoreModel):
        return int(model.head.out_features)
    return int(model.config.num_labels)


def effective_max_length(tokenizer: Any, requested: int, config: Any = None) -> int:
    """min(requested, tokenizer.model_max_length): RiC's ``min(model_max_length, 1024)``.

    A tokenizer that declares no limit falls back to the model's position count (``max_position_embeddings``
    or ``n_positions``) so that long texts are truncated instead of overflowing the position table.
    """
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit >= _HF_MAX_LENGTH_UNSET:
        limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    return requested if limit is None else min(int(limit), requested)


class HFRewardModel:
    """A :class:`~moalign.rewards.base.RewardFunction` over a Hugging Face reward model.

    ``model``/``tokenizer`` may be passed in (already loaded); otherwise they are loaded from ``spec.model``
    through the shared cache, so two rewards over the same checkpoint hold one copy. ``conversations``
    (rendered prompt -> messages, ``TaskData.conversations``) lets ``convention="chat"`` render chat-templated
    prompts' own messages with this model's template.
    """

    def __init__(self, spec: HFRewardSpec, model: Any = None, tokenizer: Any = None, name: str | None = None,
                 conversations: dict[str, list[dict]] | None = None):
        if (model is None) != (tokenizer is None):
            raise ValueError("pass both model and tokenizer, or neither")
        self.spec = spec
        self.name = name or spec.name or Path(spec.model.rstrip("/")).name
        if model is None:
            model, tokenizer = load_reward_backbone(spec)
        self.model, self.tokenizer = model, tokenizer
        self.conversations = conversations or {}
        if spec.convention == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ValueError(f"reward {self.name!r}: convention=chat but the tokenizer of {spec.model} has no chat "
                             "template; choose another convention (text_pair, concat, ...) for this model")
        self.max_length = effective_max_length(tokenizer, spec.max_length, getattr(model, "config", None))
        outputs = num_outputs(model)
        if spec.logit >= outputs:
            raise ValueError(
                f"reward {self.name!r}: logit={spec.logit} but {spec.model} has {outputs} output(s); "
                f"choose logit in 0..{outputs - 1}"
            )

    def encode(self, prompts: Sequence[str], responses: Sequence[str]):
        """The padded, truncated tensors for one batch, exactly as the model will see them."""
        transform = TRANSFORMS[self.spec.transform]
        prompts = [transform(p, self.tokenizer) for p in prompts]
        chat = self.spec.convention == "chat"
        if chat:  # the template writes the special tokens itself
            texts, pairs = chat_texts(self.tokenizer, prompts, responses, self.conversations), None
        else:
            texts, pairs = build_texts(self.spec.convention, prompts, responses, self.tokenizer.bos_token)
        batch = self.tokenizer(
            texts, pairs, truncation=True, max_length=self.max_length, padding=True, return_tensors="pt",
            add_special_tokens=not chat,
        )
        if "token_type_ids" in batch and not _takes_argument(self.model, "token_type_ids"):
            del batch["token_type_ids"]  # e.g. a generic fast tokenizer in front of a decoder-only model
        return batch

    def __call__(self, prompts: Sequence[str], responses: Sequence[str]) -> np.ndarray:
        """(n,) float64 scores, ``sign * logits[:, logit]``, in input order."""
        import torch

        if len(prompts) != len(responses):
            raise ValueError(f"reward {self.name!r}: {len(prompts)} prompts but {len(responses)} responses")
        device = next(self.model.parameters()).device
        out: list[np.ndarray] = []
        step = self.spec.batch_size
        for start in _progress(range(0, len(prompts), step), len(prompts) > 8 * step, self.name):
            batch = self.encode(prompts[start : start + step], responses[start : start + step])
            with torch.no_grad():
                logits = self.model(**batch.to(device)).logits
            out.append(logits[:, self.spec.logit].float().cpu().numpy().astype(np.float64))
        scores = np.concatenate(out) if out else np.zeros(0)
        return self.spec.sign * scores


def _takes_argument(model: Any, argument: str) -> bool:
    import inspect

    return argument in inspect.signature(model.forward).parameters


def _progress(iterable, show: bool, name: str):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=f"scoring {name}", unit="batch", leave=False)
