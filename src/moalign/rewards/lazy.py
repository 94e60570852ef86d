"""The run's rewards, built on first use and checked once against the run's objectives.

Loading reward models is slow, so a resumed run that skips every scoring stage should never build them; and
every stage that scores needs the same "one reward per objective, in order" check. Both live here, for the
methods' scoring stages and the evaluation harness alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moalign import distributed
from moalign.rewards.base import RewardFunction, score_matrix, score_matrix_on_ranks


class LazyRewards:
    """``specs`` (reward spec strings) or ready ``rewards`` objects, one per objective in ``objectives``.

    ``identity`` is what stage hashes see: the spec strings, or the names of rewards passed in as objects.
    Calling the instance returns the built reward list; :meth:`score` returns (n, k) raw scores.
    """

    def __init__(
        self,
        specs: Sequence[str] = (),
        objectives: Sequence[str] | None = None,
        *,
        rewards: Sequence[RewardFunction] | None = None,
        task=None,
    ):
        self.specs = list(specs)
        self._task = task  # the TaskConfig: its conversations, for rewards with their own chat template
        self._rewards = list(rewards) if rewards is not None else None
        count = len(self._rewards) if self._rewards is not None else len(self.specs)
        if objectives is not None and count != len(objectives):
            given = "rewards are given" if rewards is not None else f"task.rewards entries ({self.specs})"
            raise ValueError(
                f"task.objectives names {len(objectives)} objective(s) {list(objectives)} but {count} {given}; "
                "give one reward spec per objective, in the same order"
            )
        self.num_rewards = count
        self.identity = self.specs if rewards is None else [getattr(r, "name", repr(r)) for r in self._rewards]

    @classmethod
    def for_task(cls, task, rewards: Sequence[RewardFunction] | None = None) -> LazyRewards:
        """The rewards of a :class:`moalign.config.TaskConfig` (``rewards`` objects replace its specs); a reward
        with its own chat template gets the task's conversations (the data is read again, only then)."""
        return cls(task.rewards, task.objectives, rewards=rewards, task=task)

    def __call__(self) -> list:
        if self._rewards is None:
            from moalign.rewards.registry import build_rewards

            self._rewards = build_rewards(self.specs, self._conversations())
        return self._rewards

    def _conversations(self) -> dict[str, list[dict]] | None:
        from moalign.rewards.registry import uses_chat_template

        if self._task is None or not any(uses_chat_template(spec) for spec in self.specs):
            return None
        from moalign.data.task import load_task

        return load_task(self._task).conversations

    def get(self) -> list:
        return self()

    def score(self, prompts: Sequence[str], responses: Sequence[str], progress: bool = True,
              sharded: bool = False) -> np.ndarray | None:
        """(n, k) raw scores, columns in the objectives' order; no reward is built for zero rows.

        ``sharded``: under a multi-process launch every rank must call this with the same rows; each scores its
        share (:func:`~moalign.rewards.base.score_matrix_on_ranks`) and the main rank gets the scores, the
        others None."""
        if len(prompts) == 0:
            return np.zeros((0, self.num_rewards)) if not sharded or distributed.is_main() else None
        if sharded:
            return score_matrix_on_ranks(self(), prompts, responses, progress=progress)
        return score_matrix(self(), prompts, responses, progress=progress)
