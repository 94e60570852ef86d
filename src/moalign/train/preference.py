"""MultiObjectivePreferenceTrainer: one preference trainer for DPO, DPO-LW, MODPO and the MGDA family.

A thin ``transformers.Trainer`` subclass: the optimiser, schedule, gradient accumulation, clipping, mixed
precision, accelerate launch, checkpoint/resume and ``report_to`` logging are the library's. What is added:

* each step's batch carries one sub-batch of pairs **per objective** (:mod:`moalign.train.collate`);
* a pure per-pair loss ``loss_fn(logps: PairLogps, k, w) -> (B,)`` supplied by the method, on summed
  response log-probs (and token counts) from one concatenated forward (:mod:`moalign.train.logps`) and a
  reference (:mod:`moalign.train.reference`; the adapter-off reference goes through
  :class:`~moalign.models.adapters.Adapter`);
* an optional :class:`~moalign.train.schedule.PreferenceSchedule`: before each micro-batch the step's w is
  drawn (the same on every rank), handed to the weighting, to ``model_hook(model, w_rows)`` (e.g. Panacea
  writes w into its SVD-LoRA layers; ``w_rows`` is w, or with a per-pair w one row per forward row: the
  chosen rows' then the rejected rows') and to the loss; the schedule is recorded with each checkpoint;
* an :class:`~moalign.train.weighting.ObjectiveWeighting` that turns the K losses into coefficients;
* checkpoints stamped complete (:mod:`moalign.train.checkpoints`), so a resume never starts from a torn one.

Two step paths (``training_step`` is overridden because TRL's DPOTrainer has no notion of K sub-batches,
drops extra columns and backpropagates one scalar; see docs/methods/mgda.md):

* **linear** (fixed weights, GroupDRO): ``accelerator.backward`` of sum_k c_k L_k, so DDP, DeepSpeed and
  FSDP work as usual. Fixed weights go one objective at a time (forward, backward; one graph alive, zero
  weights skipped); weights that depend on the losses (GroupDRO) and DeepSpeed use one backward of the sum.
* **gradient** (MGDA family, or any weighting with ``per_objective_gradients=True``): per objective a forward
  and ``torch.autograd.grad`` of L_k into row k of a (K, D) buffer, accumulated over the gradient-accumulation
  micro-batches; at the optimiser step the weighting sees the losses and the Gram matrix of the buffer and
  ``p.grad = sum_k c_k g_k`` is written for the Trainer's clip + step (under DeepSpeed ZeRO-1/2, whose
  optimiser reads its own backward hooks, the engine gets it as the backward of sum_p <p, g_p>). With
  ``grad_layers = n > 0`` only the last n decoder layers' gradients feed the Gram (GAPO's memory saving) and
  the update is one backward of sum_k c_k L_k, with coefficients chosen per micro-batch. Under FSDP2 the
  buffer holds this rank's shard of each objective's gradient (FSDP's own backward reduces and shards it), and
  the Gram matrix is the sum of the ranks' partial Grams. FSDP1 and ZeRO-3, whose gradients live in flat or
  engine-held partitions, are refused on this path, as is ``grad_layers`` under FSDP2.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections import defaultdict
from collections.abc import Callable

import torch
from transformers import Trainer

from moalign.models.adapters import LORA, Adapter
from moalign.train.checkpoints import CompleteCheckpointMarker
from moalign.train.collate import PreferenceCollator, collate_objective
from moalign.train.gradients import (
    add_flat,
    as_shard_of,
    gram_matrix,
    is_dtensor,
    local_part,
    sum_over_shards,
    unflatten,
)
from moalign.train.logps import pair_logps
from moalign.train.losses import PairLogps
from moalign.train.reference import check_reference_mode, reference_pair_logps
from moalign.train.schedule import PreferenceSchedule
from moalign.train.weighting import FixedWeights, ObjectiveWeighting, PreferenceWeights

STATE_FILE = "moalign_preference_state.json"
TOKEN_KEYS = ("input_ids", "attention_mask", "labels")
LAYER_RE = re.compile(r"\.layers\.(\d+)\.")


class MultiObjectivePreferenceTrainer(Trainer):
    """``Trainer`` over :class:`~moalign.train.collate.PreferenceDataset` batches with a pure pair loss.

    What is specific to pairs (the sub-batch collation, the forward and reference of :meth:`objective_loss`,
    the rows of a forward per pair) is kept in a few members, so that
    :class:`~moalign.train.multi_sft.MultiObjectiveSFTTrainer` trains responses alone on the same steps.
    """

    collate_sub_batch = staticmethod(collate_objective)
    forward_rows_per_item = 2  # a pair's chosen and rejected rows

    def __init__(
        self,
        *args,
        loss_fn: Callable[[PairLogps, int, torch.Tensor | None], torch.Tensor],
        weighting: ObjectiveWeighting | None = None,
        reference: str = "precomputed",
        ref_model=None,
        per_objective_gradients: bool | None = None,
        grad_layers: int = 0,
        schedule: PreferenceSchedule | None = None,
        model_hook: Callable[[torch.nn.Module, torch.Tensor], None] | None = None,
        adapter: Adapter = LORA,
        **kwargs,
    ):
        tokenizer = kwargs.get("processing_class")
        if kwargs.get("data_collator") is None and tokenizer is not None:
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
            kwargs["data_collator"] = PreferenceCollator(pad_id, self.collate_sub_batch)
        kwargs["callbacks"] = [CompleteCheckpointMarker(), *(kwargs.get("callbacks") or [])]
        super().__init__(*args, **kwargs)
        self.loss_fn = loss_fn
        self.objective_names = list(getattr(self.train_dataset, "objectives", []))
        num = len(self.objective_names) or 1
        self.schedule = None if schedule is None else schedule.with_seed(self.args.seed)
        if self.schedule is not None:
            self.schedule.check_objectives(num)
        self.model_hook, self.adapter = model_hook, adapter
        self._w: torch.Tensor | None = None  # this micro-batch's preference (None without a schedule)
        self._w_step, self._micro = None, 0
        default = PreferenceWeights() if self.schedule is not None else FixedWeights([1.0 / num] * num)
        self.weighting = weighting or default
        self.reference = check_reference_mode(reference)
        self.ref_model = self._prepare_ref_model(ref_model)
        self.gradient_path = self.weighting.needs_gradients if per_objective_gradients is None else per_objective_gradients
        if grad_layers < 0:
            raise ValueError(f"grad_layers={grad_layers}: 0 means all trainable parameters, n > 0 the last n layers")
        self.grad_layers = grad_layers
        self._check_gradient_path_support()
        self.history: list[dict] = []
        self._buffer: torch.Tensor | None = None
        self._loss_acc: torch.Tensor | None = None
        self._log_sums: dict[str, float] = defaultdict(float)
        self._log_count = 0

    # ------------------------------------------------------------------ set-up
    def _prepare_ref_model(self, ref_model):
        if self.reference == "model" and ref_model is None:
            raise ValueError("reference='model' needs ref_model (a frozen copy of the starting policy)")
        if ref_model is None:
            return None
        ref_model.requires_grad_(False)
        return ref_model.to(self.args.device).eval()

    def _check_gradient_path_support(self) -> None:
        if not self.gradient_path:
            return
        supported = ("use FSDP2 (configs/accelerate/fsdp.yaml), plain DDP (accelerate multi-GPU), DeepSpeed ZeRO-1/2 "
                     "(configs/accelerate/zero2.yaml), or a linear weighting. See docs/methods/mgda.md.")
        if self._zero_stage() == 3:
            raise ValueError(
                "per-objective gradients (MGDA family) need each objective's gradient, but DeepSpeed ZeRO-3 splits "
                "every parameter over the processes and keeps the gradient partitions inside its engine, "
                f"summed over backwards; {supported}"
            )
        if self.is_fsdp_enabled and not self._fsdp2:
            raise ValueError(
                "per-objective gradients (MGDA family) need each objective's gradient per parameter, but FSDP1 "
                f"splits every parameter over the processes as flat shards; set fsdp_version: 2, or {supported}"
            )
        if self._fsdp2 and self.grad_layers > 0:
            raise ValueError(
                "grad_layers > 0 takes its partial gradients with torch.autograd.grad, which FSDP2's sharded "
                "parameters do not reduce; use grad_layers=0 under FSDP2 (its gradient buffer is sharded already), "
                "or DDP / DeepSpeed ZeRO-1/2 for grad_layers. See docs/methods/mgda.md."
            )
        if self.args.fp16:
            raise ValueError("per-objective gradients do not support fp16 loss scaling; use bf16 or float32")

    @property
    def _fsdp2(self) -> bool:
        """Whether torch's FSDP2 (``fully_shard``) shards the model: its parameters and gradients are DTensors."""
        return bool(self.is_fsdp_enabled and self.accelerator.is_fsdp2)

    def _zero_stage(self) -> int | None:
        """DeepSpeed's ZeRO stage (None without DeepSpeed)."""
        if not self.is_deepspeed_enabled:
            return None
        return int(self.accelerator.state.deepspeed_plugin.zero_stage)

    def _grad_params(self, model) -> list[torch.nn.Parameter]:
        """Trainable parameters whose gradients feed the weighting (all, or the last ``grad_layers`` layers)."""
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if self.grad_layers == 0:
            return [p for _, p in named]
        layers = [int(m.group(1)) for n, _ in named if (m := LAYER_RE.search(n))]
        if not layers:
            raise ValueError("grad_layers > 0 but no parameter name contains '.layers.<i>.'; use grad_layers=0")
        first = max(layers) - self.grad_layers + 1
        keep = [p for n, p in named if (m := LAYER_RE.search(n)) and int(m.group(1)) >= first]
        keep += [p for n, p in named if not LAYER_RE.search(n) and "embed" not in n]
        return keep

    # ------------------------------------------------------------------ losses
    def objective_loss(self, model, batch: dict, k: int) -> tuple[torch.Tensor, dict]:
        """Mean pair loss of objective k's sub-batch, and detached metrics (accuracy, log-ratio gap)."""
        out = pair_logps(model, batch)
        policy = self.accelerator.unwrap_model(model)
        ref_c, ref_r = reference_pair_logps(batch, policy, self.ref_model, self.reference, self.adapter)
        columns = {n: v for n, v in batch.items() if n not in TOKEN_KEYS}
        dtype = out.chosen.dtype
        logps = PairLogps(out.chosen, out.rejected, ref_c.to(dtype), ref_r.to(dtype), columns,
                          out.chosen_tokens, out.rejected_tokens, sequence_width=int(batch["input_ids"].shape[1]))
        per_pair = self.loss_fn(logps, k, self._w)
        weights = self.weighting.pair_weights(k)
        loss = per_pair.mean() if weights is None else (per_pair * weights.to(per_pair)).mean()
        gap = logps.logit_gap().detach()
        metrics = {"accuracy": (gap > 0).double().mean().item(), "logratio_gap": gap.double().mean().item()}
        return loss, metrics

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """sum_k c_k L_k with the last coefficients (uniform before the first step); used for evaluation."""
        batches = inputs["objectives"]
        coef = self.weighting.weights if self.weighting.weights is not None else torch.full((len(batches),), 1 / len(batches))
        loss = sum(coef[k].item() * self.objective_loss(model, b, k)[0] for k, b in enumerate(batches))
        return (loss, {}) if return_outputs else loss

    # ------------------------------------------------------------------ steps
    def _prepare_input(self, data):
        """Move to the device without casting floats (precomputed reference log-probs must keep float64)."""
        if isinstance(data, dict):
            return {k: self._prepare_input(v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return type(data)(self._prepare_input(v) for v in data)
        return data.to(self.args.device) if isinstance(data, torch.Tensor) else data

    def floating_point_ops(self, inputs) -> int:
        """6 x parameters x tokens over every objective's rows (the Trainer's estimate looks for input_ids)."""
        tokens = sum(int(b["attention_mask"].sum()) for b in inputs["objectives"])
        return 6 * tokens * self.model.num_parameters(exclude_embeddings=True)

    def training_step(self, model, inputs, num_items_in_batch=None) -> torch.Tensor:
        model.train()
        batches = self._prepare_inputs(inputs)["objectives"]
        if len(batches) != len(self.objective_names):
            raise ValueError(f"batch has {len(batches)} objective sub-batches, dataset names {self.objective_names}")
        self._set_preference(model, batches)
        with self.compute_loss_context_manager():
            if not self.gradient_path:
                return self._linear_step(model, batches).detach()
            if self.grad_layers > 0:
                return self._partial_gradient_step(model, batches).detach()
            return self._gradient_step(model, batches).detach()

    def _set_preference(self, model, batches) -> None:
        """Draw this micro-batch's w, hand it to the weighting, and run the model hook (before any forward)."""
        if self.schedule is None:
            return
        step = self.state.global_step  # steps done so far = the 0-based index of this step
        self._micro = self._micro + 1 if step == self._w_step else 0
        self._w_step = step
        self._w = self._draw(step, self._micro, rows=batches[0]["input_ids"].shape[0] // self.forward_rows_per_item)
        self.weighting.set_preference(self._w)
        if self.model_hook is not None:
            rows = self._w.repeat(self.forward_rows_per_item, 1) if self._w.ndim == 2 else self._w
            self.model_hook(self.accelerator.unwrap_model(model), rows)

    def _draw(self, step: int, micro: int, rows: int) -> torch.Tensor:
        """The schedule's w: (K,), or this process's rows of the step's global batch (per-sample)."""
        k = len(self.objective_names)
        if not self.schedule.per_sample:
            return torch.from_numpy(self.schedule.draw(step, k))
        stride = self.args.per_device_train_batch_size
        start = self.accelerator.process_index * stride
        w = self.schedule.draw(step, k, rows=stride * self.accelerator.num_processes, micro=micro)
        return torch.from_numpy(w[start : start + rows])

    def _scale(self) -> float:
        return 1.0 / getattr(self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps)

    def _backward(self, loss: torch.Tensor) -> None:
        kwargs = {"scale_wrt_gas": False} if self.is_deepspeed_enabled else {}
        self.accelerator.backward(loss, **kwargs)

    def _linear_step(self, model, batches) -> torch.Tensor:
        """Coefficients from the detached losses, then one backward of sum_k c_k L_k (K graphs alive)."""
        fixed = self.weighting.fixed_coefficients()
        if fixed is not None and not self.is_deepspeed_enabled:
            return self._sequential_step(model, batches, fixed)
        results = {k: self.objective_loss(model, b, k) for k, b in enumerate(batches)}
        losses = torch.tensor([loss.item() for loss, _ in results.values()], dtype=torch.float64)
        coef = self.weighting.coefficients(self._process_mean(losses))  # every process: the same weights
        total = sum(coef[k].item() * loss for k, (loss, _) in results.items()) * self._scale()
        self._backward(total)
        self._record(losses, coef, {k: m for k, (_, m) in results.items()})
        return total

    def _process_mean(self, values: torch.Tensor) -> torch.Tensor:
        """Mean over processes (DDP: each sees a different shard of the batch), on the CPU in float64."""
        if self.accelerator.num_processes == 1:
            return values
        device_values = values.to(self.args.device, torch.float32 if self.args.device.type == "mps" else values.dtype)
        return self.accelerator.reduce(device_values, reduction="mean").double().cpu()

    def _sequential_step(self, model, batches, coef: torch.Tensor) -> torch.Tensor:
        """Fixed weights: forward and backward one objective at a time (one graph alive), zero weights skipped.

        Under DDP only the last backward synchronises; DeepSpeed counts one backward per micro-batch, so it
        takes the summed path above instead.
        """
        active = [k for k in range(len(batches)) if coef[k] > 0]
        losses, metrics, total = torch.zeros(len(batches), dtype=torch.float64), {}, 0.0
        for i, k in enumerate(active):
            loss, metrics[k] = self.objective_loss(model, batches[k], k)
            scaled = coef[k].item() * loss * self._scale()
            with self.accelerator.no_sync(model) if i < len(active) - 1 else contextlib.nullcontext():
                self._backward(scaled)
            losses[k] = loss.item()
            total = total + scaled.detach()
        self.weighting.coefficients(losses)  # records the weights for the logs
        self._record(losses, coef, metrics)
        return total

    def _gradient_step(self, model, batches) -> torch.Tensor:
        """Per-objective gradients into the (K, D) buffer; combine at the optimiser step."""
        policy = self.accelerator.unwrap_model(model)
        params = self._grad_params(policy)
        local = [local_part(p) for p in params]  # this rank's elements (the shards under FSDP2)
        self._allocate_buffer(len(batches), params, local)
        scale, metrics, step_loss = self._scale(), {}, 0.0
        for k, batch in enumerate(batches):
            loss, metrics[k] = self.objective_loss(policy, batch, k)
            if self._fsdp2:
                grads = self._sharded_gradient(policy, loss, params)
            else:
                grads = torch.autograd.grad(loss, params, allow_unused=True)
            add_flat(self._buffer[k], grads, local, scale)
            self._loss_acc[k] += loss.detach().double().cpu() * scale
            step_loss += loss.detach() * scale / len(batches)
        if self.accelerator.sync_gradients:
            self._apply_buffer(params, local, metrics)
        return step_loss

    def _allocate_buffer(self, num_objectives: int, params, local) -> None:
        """The (K, D) float32 buffer (D: this rank's elements of the parameters; all of them unless sharded)."""
        if self._buffer is not None:
            return
        if self._fsdp2 and not all(is_dtensor(p) for p in params):
            raise ValueError("per-objective gradients under FSDP2 need every trainable parameter sharded by FSDP, but "
                             f"{sum(not is_dtensor(p) for p in params)} are not (added after fully_shard?); "
                             "see docs/methods/mgda.md")
        dtype = torch.promote_types(local[0].dtype, torch.float32)
        self._buffer = torch.zeros(num_objectives, sum(p.numel() for p in local), dtype=dtype, device=local[0].device)
        self._loss_acc = torch.zeros(num_objectives, dtype=torch.float64)

    def _sharded_gradient(self, model, loss: torch.Tensor, params) -> list[torch.Tensor | None]:
        """FSDP2: one objective's gradient, this rank's shard of it, averaged over ranks by FSDP's backward.

        ``torch.autograd.grad`` would bypass FSDP's reduce-scatter, so the loss goes through the engine's own
        backward, with gradient sync forced on (inside the Trainer's ``no_sync`` of an accumulation step too) so
        that each backward hands over its reduced shard; ``p.grad`` is read and cleared for the next objective.
        """
        model.set_requires_gradient_sync(True)
        self._backward(loss)
        grads = [None if p.grad is None else p.grad.to_local() for p in params]
        for p in params:
            p.grad = None
        return grads

    def _apply_buffer(self, params, local, metrics) -> None:
        buffer, losses = self._buffer, self._loss_acc
        if self.accelerator.num_processes > 1:
            losses = self._process_mean(losses)
        if self._fsdp2:  # rows are this rank's shards, already averaged: the Gram is the sum of the partial ones
            gram = sum_over_shards(gram_matrix(buffer), params[0])
        else:
            if self.accelerator.num_processes > 1:  # DDP: average each objective's gradient over processes
                buffer = self.accelerator.reduce(buffer, reduction="mean")
            gram = gram_matrix(buffer)
        coef = self.weighting.coefficients(losses.clone(), gram.cpu())
        combined = coef.to(buffer.device, buffer.dtype) @ buffer
        pieces = unflatten(combined, local)
        if self.is_deepspeed_enabled:
            self._backward_as_gradient(params, pieces)
        elif self._fsdp2:
            for p, piece in zip(params, pieces):
                p.grad = as_shard_of(piece, p)
        else:
            for p, piece in zip(params, pieces):
                p.grad = piece.clone() if p.grad is None else p.grad + piece
        self._record(losses, coef, metrics)
        self._buffer.zero_()
        self._loss_acc.zero_()

    def _backward_as_gradient(self, params, pieces) -> None:
        """DeepSpeed ZeRO-1/2: hand the combined gradient to the engine as the backward of sum_p <p, g_p>.

        ZeRO's optimiser takes gradients from its own backward hooks (reduced and partitioned there), not from
        ``p.grad``; the gradient of that surrogate with respect to p is exactly g_p, so the engine reduces,
        clips and steps it as any other backward. Every rank holds the same (already averaged) g, so ZeRO's
        average over ranks leaves it as it is.
        """
        surrogate = sum((p * piece.detach()).sum() for p, piece in zip(params, pieces))
        self._backward(surrogate)

    def _partial_gradient_step(self, model, batches) -> torch.Tensor:
        """Gram from the last layers' gradients; one backward of sum_k c_k L_k through every parameter."""
        policy = self.accelerator.unwrap_model(model)
        params = self._grad_params(policy)
        results = [self.objective_loss(model, b, k) for k, b in enumerate(batches)]
        rows = []
        for loss, _ in results:
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            row = torch.zeros(sum(p.numel() for p in params), dtype=torch.float32, device=params[0].device)
            rows.append(add_flat(row, grads, params, 1.0))
        grads = torch.stack(rows)
        losses = torch.tensor([loss.item() for loss, _ in results], dtype=torch.float64)
        if self.accelerator.num_processes > 1:
            grads = self.accelerator.reduce(grads, reduction="mean")
            losses = self._process_mean(losses)
        coef = self.weighting.coefficients(losses, gram_matrix(grads).cpu())
        total = sum(coef[k].item() * loss for k, (loss, _) in enumerate(results)) * self._scale()
        self._backward(total)
        self._record(losses, coef, {k: m for k, (_, m) in enumerate(results)})
        return total

    # ------------------------------------------------------------------ logging and state
    def _record(self, losses: torch.Tensor, coef: torch.Tensor, metrics: dict) -> None:
        """One history row per optimiser step (per micro-batch on the linear path's last micro-batch)."""
        if not self.accelerator.sync_gradients:
            return
        weights = self.weighting.weights if self.weighting.weights is not None else coef
        row = {"step": self.state.global_step + 1}
        w = None if self._w is None else (self._w.mean(dim=0) if self._w.ndim == 2 else self._w)
        for k, name in enumerate(self.objective_names):
            row[f"loss/{name}"] = float(losses[k])
            row[f"weight/{name}"] = float(weights[k])
            if w is not None:
                row[f"w/{name}"] = float(w[k])
            if len(coef) and float(coef[k]) != float(weights[k]):
                row[f"coef/{name}"] = float(coef[k])
            for key, value in metrics.get(k, {}).items():
                row[f"{key}/{name}"] = value
        row = self._mean_over_ranks(row)
        self.history.append(row)
        for key, value in row.items():
            if key != "step":
                self._log_sums[key] += value
        self._log_count += 1

    def _mean_over_ranks(self, row: dict) -> dict:
        """Under data parallelism each rank saw its share of the pairs: the row's values averaged over ranks
        (equal shares, so the mean of the ranks' means is the one-process mean of the whole batch)."""
        if self.accelerator.num_processes == 1:
            return row
        keys = [k for k in row if k != "step"]
        local = torch.tensor([float(row[k]) for k in keys], dtype=torch.float64, device=self.accelerator.device)
        mean = self.accelerator.reduce(local, reduction="mean").cpu().tolist()
        return {"step": row["step"], **dict(zip(keys, mean))}

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the per-objective losses and weights (averaged since the last log) to the Trainer's logs."""
        if self._log_count and "loss" in logs:
            logs.update({k: v / self._log_count for k, v in self._log_sums.items()})
            self._log_sums.clear()
            self._log_count = 0
        super().log(logs, start_time)

    def _save_checkpoint(self, model, trial) -> None:
        super()._save_checkpoint(model, trial)
        folder = os.path.join(self._get_output_dir(trial=trial), f"checkpoint-{self.state.global_step}")
        if self.args.should_save:
            schedule = None if self.schedule is None else self.schedule.state_dict()
            state = {"weighting": self.weighting.state_dict(), "history": self.history, "schedule": schedule}
            with open(os.path.join(folder, STATE_FILE), "w", encoding="utf-8") as handle:
                json.dump(state, handle)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        """Also restore moalign's state; hooked here because every backend (DeepSpeed included, which skips
        ``_load_from_checkpoint``) calls this on resume."""
        super()._load_optimizer_and_scheduler(checkpoint)
        path = None if checkpoint is None else os.path.join(checkpoint, STATE_FILE)
        if path is None or not os.path.isfile(path):
            return
        with open(path, encoding="utf-8") as handle:
            state = json.load(handle)
        saved = state.get("schedule")
        if self.schedule is not None:
            self.schedule.check_state(saved, where=checkpoint)
        elif saved is not None:
            raise ValueError(f"{checkpoint} was trained with preference schedule {saved}; pass the same schedule")
        self.weighting.load_state_dict(state["weighting"])
        self.history = list(state["history"])
