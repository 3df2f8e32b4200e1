"""What transformers' `Trainer` drives: the model wrapper that unpads each batch, and the Trainer subclass with
this project's samplers, per-module learning rates and checkpoints of the trainable weights only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer
from transformers.modeling_outputs import CausalLMOutput

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.train.dataset import ConversationDataset
from tinyllava_bench.train.freezing import parameter_groups
from tinyllava_bench.train.recipes import MODULES, StageRecipe
from tinyllava_bench.train.sampler import ModalityGroupedSampler, ShuffleSampler
from tinyllava_bench.train.stage_folder import TRAINABLE_WEIGHTS


class TrainingModel(nn.Module):
    """What the Trainer drives: cuts each padded row back to its length for `TinyLlava.forward`.

    A batch without images still runs the vision tower and connector on a blank image (weight 0 in the loss), as
    LLaVA does: every process then uses the same parameters each step, which DDP and ZeRO-3 require.
    """

    def __init__(self, model: TinyLlava) -> None:
        super().__init__()
        self.model = model
        self.skipped: list[str] = []  # samples whose image could not be read while training

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        skipped: list[str] | None = None,
    ) -> Any:
        self.skipped.extend(skipped or [])
        if not len(input_ids):
            # every sample of the batch was dropped: a zero loss that still reaches every trainable parameter
            zero = torch.stack([p.sum() for p in self.parameters() if p.requires_grad]).sum() * 0.0
            return CausalLMOutput(loss=zero)
        sizes = lengths.tolist()
        ids = [row[:n] for row, n in zip(input_ids.tolist(), sizes)]
        targets = [row[:n] for row, n in zip(labels.tolist(), sizes)]
        untouched = None
        if pixel_values is None:
            size = self.model.vision_tower.image_size
            blank = torch.zeros(1, 3, size, size, device=input_ids.device)
            untouched = self.model.encode_images(blank).sum() * 0.0
        output = self.model(ids, labels=targets, pixel_values=pixel_values)
        if untouched is not None:
            output.loss = output.loss + untouched
        return output


class TinyLlavaTrainer(Trainer):
    """Trainer with per-module learning rates, this project's samplers, and checkpoints of trainable weights only."""

    def __init__(self, *args: Any, stage: StageRecipe, sampler_seed: int, **kwargs: Any) -> None:
        self.stage = stage
        self.sampler_seed = sampler_seed
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if not isinstance(dataset, ConversationDataset):
            raise TypeError(f"TinyLlavaTrainer trains on a ConversationDataset, not {type(dataset).__name__}")
        if self.stage.group_by_modality:
            return ModalityGroupedSampler(
                dataset.modality_lengths,
                self.args.per_device_train_batch_size,
                self.args.world_size,
                self.sampler_seed,
            )
        return ShuffleSampler(len(dataset), self.sampler_seed)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            target = model if model is not None else self.model
            if target is None:
                raise ValueError("TinyLlavaTrainer has no model to optimise")
            decay = set(self.get_decay_parameter_names(target))
            rates = {module: self.stage.lr_for(module) for module in MODULES}
            groups = parameter_groups(target.named_parameters(), rates, self.args.weight_decay, decay)
            # transformers annotates `model` as a PreTrainedModel, but its own create_optimizer passes any
            # nn.Module (the model is read only by optimizers this project does not offer: GaLore, LOMO, ...)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, target)  # type: ignore[arg-type]
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def _trainable_names(self) -> set[str]:
        model = self.accelerator.unwrap_model(self.model)
        return {name for name, p in model.named_parameters() if p.requires_grad}

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # Frozen weights equal the stage's starting model, so a checkpoint holds the trained ones only
        # (a connector-only pretrain checkpoint is megabytes, not gigabytes).
        from safetensors.torch import save_file

        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        if output_dir is None:
            raise ValueError("TinyLlavaTrainer has no folder to save the checkpoint in")
        os.makedirs(output_dir, exist_ok=True)
        state = (
            state_dict if state_dict is not None else self.accelerator.unwrap_model(self.model).state_dict()
        )
        names = self._trainable_names()
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items() if k in names}
        save_file(tensors, os.path.join(output_dir, TRAINABLE_WEIGHTS), metadata={"format": "pt"})

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        from safetensors.torch import load_file

        path = Path(resume_from_checkpoint) / TRAINABLE_WEIGHTS
        if not path.is_file():
            raise UserError(
                f"{resume_from_checkpoint}: no {TRAINABLE_WEIGHTS}; not a checkpoint this trainer wrote"
            )
        state = load_file(str(path))
        names = self._trainable_names()
        if set(state) != names:
            raise UserError(
                f"{resume_from_checkpoint}: its trained weights do not match this stage's trainable parameters "
                f"({len(set(state) ^ names)} differ); the recipe changed since it was written: resume with the same "
                "settings or start the stage again in a new --output"
            )
        self.accelerator.unwrap_model(model or self.model).load_state_dict(state, strict=False)
