"""``Anthropic/hh-rlhf``: dialogues with a chosen and a rejected final assistant turn.

Layout: columns ``chosen`` and ``rejected``, each a whole conversation
``"\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nHuman: ...\\n\\nAssistant: <final turn>"``.

Mapping (RiC's split, spec section 1): prompt = the text up to and including the last ``"\\n\\nAssistant:"``,
unchanged; response = what follows, stripped. (RiC's own builder also writes a space before that last tag;
the RiC method's official prompt style adds it where it conditions the prompt, so the prompt here stays the
conversation as written, for every method.) Both conversations become responses (each with its own
prompt). A pair needs both sides to share the prompt and to differ. Its objective label is the ``objective`` option, by
default read from ``data_dir`` (``harmless-base`` -> ``harmless``, ``helpful-*`` -> ``helpful``, otherwise
``preference``). Prompts are already in HH format, so only the ``hh``/``raw`` templates (no change) apply.
Skipped: conversations without an assistant turn, empty final turns. The golden answer (and the order of
the prompts) comes from the chosen conversations.
"""

from __future__ import annotations

from moalign.data.sources.base import Collector, Source, SourceData, require_columns

MARKER = "\n\nAssistant:"


def split_conversation(text: str) -> tuple[str, str] | None:
    """(prompt up to and including the last assistant marker, final turn stripped), or None without one."""
    cut = text.rfind(MARKER)
    if cut < 0:
        return None
    end = cut + len(MARKER)
    return text[:end], text[end:].strip()


def objective_from_data_dir(data_dir: str | None) -> str:
    if data_dir and data_dir.startswith("harmless"):
        return "harmless"
    if data_dir and data_dir.startswith("helpful"):
        return "helpful"
    return "preference"


def build(dataset, template: str | None, spec: str, objective: str | None = None,
          data_dir: str | None = None) -> SourceData:
    if template not in (None, "hh", "raw"):
        raise ValueError(f"{spec}: HH-RLHF prompts are whole conversations already in HH format; "
                         f"prompt template {template!r} cannot be applied (use 'hh')")
    require_columns(dataset, ["chosen", "rejected"], "hh-rlhf", spec)
    label = objective or objective_from_data_dir(data_dir)
    out = Collector()
    for i, row in enumerate(dataset):
        good, bad = split_conversation(row["chosen"] or ""), split_conversation(row["rejected"] or "")
        for side, part in (("chosen", good), ("rejected", bad)):
            if part is None:
                out.drop(f"{side} conversation without an assistant turn")
            elif not part[1]:
                out.drop(f"{side} final turn empty")
            else:
                out.response(part[0], part[1], f"{i}:{side}")
                if side == "chosen":
                    out.golden.setdefault(part[0], part[1])
        if good is None or bad is None or not good[1] or not bad[1]:
            continue
        if good[0] != bad[0]:
            out.drop("chosen and rejected conversations differ before the final turn")
            continue
        out.pair(good[0], good[1], bad[1], label, f"{i}")
    return out.result()


SOURCE = Source(
    name="hh-rlhf", hub_id="Anthropic/hh-rlhf", objectives=("harmless", "helpful"), default_template=None,
    build=build, options={"objective": None, "data_dir": None},
)
