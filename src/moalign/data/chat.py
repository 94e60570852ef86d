"""Chat templates: how a conversational prompt (a list of ``{"role", "content"}`` messages) becomes text.

moalign trains on a prompt string plus a response string, so conversational data is rendered once, when it
is loaded, with the chat template of the *policy's* tokenizer: the prompt messages through TRL's
``maybe_apply_chat_template`` (``add_generation_prompt=True`` after a user turn, the final message continued
after an assistant turn), the response as the assistant turn's content, as plain text.

``task.chat_template`` chooses the tokenizer: ``"auto"`` = ``task.chat_tokenizer`` (the run config fills it
with ``model.name_or_path``), ``"none"`` = conversational data is refused, anything else = a tokenizer
folder or Hub id. The tokenizer is loaded (``AutoTokenizer.from_pretrained``, never remote code) only when a
conversational row is met, so standard (string) data never needs one. Each rendered prompt's messages are
kept (``TaskData.conversations``), so a reward model with a chat template of its own renders the same
conversation with its own tokenizer (``hf:...?convention=chat``).
"""

from __future__ import annotations

from typing import Any

from moalign.config import ConfigError, TaskConfig

FIX = ("use an instruct/chat model's tokenizer (task.chat_template=<tokenizer folder or Hub id>), or write the "
       "data as standard strings (prompt/chosen/rejected text) with task.prompt_template, e.g. hh")


class ChatRenderer:
    """Renders conversational prompts with one tokenizer's chat template; the tokenizer loads on first use."""

    def __init__(self, tokenizer: Any, *, where: str = "task.chat_template"):
        self.name = tokenizer if isinstance(tokenizer, str) else getattr(tokenizer, "name_or_path", "") or type(
            tokenizer).__name__
        self.where = where
        self._tokenizer = None if isinstance(tokenizer, str) else tokenizer
        self.conversations: dict[str, list[dict]] = {}  # rendered prompt -> its messages (reward models' input)

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = _load(self.name, self.where)
        if not getattr(self._tokenizer, "chat_template", None):
            raise ConfigError(f"{self.where}: tokenizer {self.name!r} has no chat template, so the conversational "
                              f"data cannot be rendered; {FIX}")
        return self._tokenizer

    def prompt(self, messages: list[dict]) -> str:
        """The prompt messages as text, ready for the assistant's reply (TRL's own rendering)."""
        from trl.data_utils import maybe_apply_chat_template

        text = maybe_apply_chat_template({"prompt": messages}, self.tokenizer)["prompt"]
        self.conversations.setdefault(text, [dict(m) for m in messages])
        return text


def _load(name: str, where: str):
    if name == "embedded":
        raise ConfigError(f"{where}: the built-in embedded model's tokenizer has no chat template, so the "
                          f"conversational data cannot be rendered; {FIX}")
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{where}: cannot load tokenizer {name!r} to render the conversational data ({err}); "
                          "give a tokenizer folder or a Hub id that is cached or reachable") from err


def chat_renderer(task: TaskConfig, tokenizer: Any = None) -> ChatRenderer | None:
    """The renderer ``task`` asks for: None for ``chat_template: none``; ``tokenizer`` (a name or a loaded
    tokenizer, from the caller) wins over ``task.chat_tokenizer`` for ``auto``."""
    choice = task.chat_template
    if choice == "none":
        return None
    if choice != "auto":
        return ChatRenderer(choice)
    chosen = tokenizer if tokenizer is not None else task.chat_tokenizer
    if chosen is None:
        return _Missing()
    return ChatRenderer(chosen, where=f"task.chat_template='auto' (tokenizer {task.chat_tokenizer!r})"
                        if tokenizer is None else "load_task(tokenizer=...)")


class _Missing(ChatRenderer):
    """``auto`` without a known policy tokenizer: fails only if a conversational row needs rendering."""

    def __init__(self):
        super().__init__("", where="task.chat_template='auto'")

    @property
    def tokenizer(self):
        raise ConfigError("task.chat_template='auto' but no policy tokenizer is known (task.chat_tokenizer is "
                          "unset; a run config fills it from model.name_or_path): set task.chat_tokenizer or "
                          "task.chat_template to a tokenizer folder / Hub id, or pass load_task(tokenizer=...)")
