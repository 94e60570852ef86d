"""Save a trained policy (a full model, or only its adapter) with its tokenizer: one way for SFT and preference
training alike, so a saved folder always loads with :func:`moalign.models.load.load_policy`."""

from __future__ import annotations

from pathlib import Path

from moalign.models.adapters import LORA, Adapter


def save_policy(trainer, save_dir: str | Path, *, adapter: Adapter = LORA, base_name: str | None = None) -> Path:
    """Write ``trainer``'s model into ``save_dir``: through the Trainer for a full model (it gathers sharded
    weights: ZeRO-3, FSDP), through ``adapter.save`` for an adapter (naming ``base_name`` as its base); then
    the tokenizer. The pickled ``training_args.bin`` is dropped: nothing reloads it."""
    save_dir = Path(save_dir)
    policy = trainer.accelerator.unwrap_model(trainer.model)
    if not adapter.is_attached(policy):
        trainer.save_model(str(save_dir))
    else:
        sharded = trainer.is_deepspeed_enabled or trainer.is_fsdp_enabled
        state = trainer.accelerator.get_state_dict(trainer.model) if sharded else None
        if trainer.args.should_save:
            adapter.save(policy, save_dir, base_name=base_name, state_dict=state)
    if trainer.args.should_save:
        trainer.processing_class.save_pretrained(str(save_dir))
        (save_dir / "training_args.bin").unlink(missing_ok=True)
    return save_dir
