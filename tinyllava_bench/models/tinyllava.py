"""One TinyLLaVA model: vision tower → connector → causal LM, with the prompt, preprocessing and generation API."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from tinyllava_bench.models.prefix_sharing import (
    PrefixStore,
    cache_argument,
    output_cache,
    split_prompt,
    suffix_inputs,
)
from tinyllava_bench.models.preprocess import ImagePreprocessor
from tinyllava_bench.models.sampling import Sampling, SeededSampler
from tinyllava_bench.models.templates import get_template
from tinyllava_bench.models.tokenization import (
    IGNORE_INDEX,
    IMAGE_TOKEN_INDEX,
    tokenize_many_with_images,
)
from tinyllava_bench.models.vision import VisionTower


@dataclass
class ModelSettings:
    """What the checkpoint's own code did; every field can be overridden at load time."""

    template: str
    image_aspect: str = "square"  # pad | square
    vision_layer: int = -2  # hidden_states index of the full tower
    vision_select: str = "patch"  # patch: drop first token; full: keep all
    connector: str = "mlp2x_gelu"
    max_length: int | None = 2048  # sequences (image tokens included) are cut here, as the original code did
    strip_question: bool = True  # Factory strips the question; legacy keeps it as given
    layout: str = "native"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TinyLlava(nn.Module):
    """The model plus everything needed to run it on (image, question) pairs."""

    def __init__(
        self,
        vision_tower: VisionTower,
        connector: nn.Module,
        language_model: Any,
        tokenizer: Any,
        preprocessor: ImagePreprocessor,
        settings: ModelSettings,
        name: str = "",
        source: str = "",
    ) -> None:
        super().__init__()
        self.vision_tower = vision_tower
        self.connector = connector
        self.language_model = language_model
        self.tokenizer = tokenizer
        self.preprocessor = preprocessor
        self.settings = settings
        self.template = get_template(settings.template)
        self.name = name
        self.source = source
        self.checkpoint_dir: Path | None = None  # set by load_model: where the files came from
        # set by load_model: other folders it read (vision tower, base LLM's tokenizer ...), by the name that led there
        self.read_from: dict[str, Path] = {}
        self.card: Any = None  # the model-zoo card, when loaded by zoo name

    # ----- properties -------------------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.language_model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.language_model.parameters()).dtype

    @property
    def num_image_tokens(self) -> int:
        """Image tokens per image after the connector (729 legacy SigLIP, 728 Factory SigLIP, 576 CLIP-336)."""
        queries = getattr(self.connector, "latents", None)
        return queries.shape[0] if queries is not None else self.vision_tower.num_tokens

    # ----- prompt and image -------------------------------------------------------------------------------------
    def render_prompt(self, question: str) -> str:
        return self.template.render_prompt(question, strip_question=self.settings.strip_question)

    def prompt_ids(self, question: str) -> list[int]:
        return self.prompt_ids_many([question])[0]

    def prompt_ids_many(self, questions: list[str]) -> list[list[int]]:
        """The prompt's token ids (`<image>` as IMAGE_TOKEN_INDEX) of every question, tokenised in one batch."""
        return self.tokenize_prompts([self.render_prompt(question) for question in questions])

    def tokenize_prompts(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of rendered prompts (`render_prompt`), `<image>` as IMAGE_TOKEN_INDEX, in one batch."""
        image_token_id = self.settings.extra.get("image_token_id")
        if image_token_id is None:
            return tokenize_many_with_images(prompts, self.tokenizer)
        # HF llava tokenises the whole prompt, `<image>` being a special token of its tokenizer
        encoded = self.tokenizer(prompts)["input_ids"] if prompts else []
        return [[IMAGE_TOKEN_INDEX if t == image_token_id else t for t in ids] for ids in encoded]

    def pixel_values(self, image: Image.Image) -> torch.Tensor:
        return self.preprocessor(image)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] → [B, tokens, llm_hidden] in the model's dtype."""
        vision_dtype = next(self.vision_tower.parameters()).dtype
        features = self.vision_tower(pixel_values.to(device=self.device, dtype=vision_dtype))
        features = self.connector(features.to(self.dtype))
        # transformers 4.x scaled every input embedding of Gemma by sqrt(hidden), image features included;
        # transformers 5 scales inside the token embedding, so spliced features are scaled here.
        scale = getattr(self.language_model.get_input_embeddings(), "embed_scale", None)
        if scale is not None:
            features = features * scale.to(features.dtype)
        return features

    # ----- splicing -----------------------------------------------------------------------------------------------
    def splice(
        self,
        ids: Sequence[Sequence[int]],
        image_features: torch.Tensor | None,
        labels: Sequence[Sequence[int]] | None = None,
        padding_side: str = "left",
    ) -> dict[str, torch.Tensor]:
        """Embed token ids, put one image's features at each IMAGE_TOKEN_INDEX, cut to max_length, pad.

        Returns inputs_embeds, attention_mask, position_ids (0-based per sequence) and, when given, labels.
        """
        embed = self.language_model.get_input_embeddings()
        device = self.device
        sequences, sequence_labels = [], []
        image_index = 0
        for row, row_ids in enumerate(ids):
            row_ids_t = torch.tensor(list(row_ids), dtype=torch.long, device=device)
            row_labels = torch.tensor(list(labels[row]), dtype=torch.long, device=device) if labels else None
            is_image = row_ids_t == IMAGE_TOKEN_INDEX
            text_embeds = embed(row_ids_t.clamp(min=0))
            pieces, label_pieces, start = [], [], 0
            for position in torch.nonzero(is_image).flatten().tolist():
                if image_features is None:
                    raise ValueError(f"prompt {row} has an image token but no image features were given")
                pieces.append(text_embeds[start:position])
                feature = image_features[image_index]
                image_index += 1
                pieces.append(feature)
                if row_labels is not None:
                    label_pieces.append(row_labels[start:position])
                    label_pieces.append(torch.full((feature.shape[0],), IGNORE_INDEX, device=device))
                start = position + 1
            pieces.append(text_embeds[start:])
            sequence = torch.cat(pieces)
            if row_labels is not None:
                label_pieces.append(row_labels[start:])
                sequence_labels.append(torch.cat(label_pieces)[: self.settings.max_length])
            sequences.append(sequence[: self.settings.max_length])
        return _pad(sequences, sequence_labels or None, padding_side)

    # ----- inference ----------------------------------------------------------------------------------------------
    def _batch_pixels(self, images: Sequence[Image.Image | torch.Tensor]) -> torch.Tensor:
        return torch.stack([im if isinstance(im, torch.Tensor) else self.pixel_values(im) for im in images])

    @torch.inference_mode()
    def prompt_logits(self, image: Image.Image | torch.Tensor, question: str) -> torch.Tensor:
        """Float32 logits at every prompt position (image tokens expanded): [seq_len, vocab]."""
        features = self.encode_images(self._batch_pixels([image]))
        inputs = self.splice([self.prompt_ids(question)], features)
        out = self.language_model(
            inputs_embeds=inputs["inputs_embeds"],
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            use_cache=False,
        )
        return out.logits[0].float()

    @torch.inference_mode()
    def generate_ids(
        self,
        images: Sequence[Image.Image | torch.Tensor],
        questions: Sequence[str],
        max_new_tokens: int = 128,
        prompt_ids: Sequence[Sequence[int]] | None = None,
        sampling: Sampling | None = None,
    ) -> list[list[int]]:
        """Generation for a batch (left padded); each list ends at and includes the first EOS.

        Greedy unless `sampling` is given (then each row samples from its own seeded stream, see models/sampling.py).
        """
        if len(images) != len(questions):
            raise ValueError(f"{len(images)} images but {len(questions)} questions")
        if not questions:
            return []
        ids = prompt_ids if prompt_ids is not None else [self.prompt_ids(q) for q in questions]
        features = self.encode_images(self._batch_pixels(images))
        return self.generate_from_ids(ids, features, max_new_tokens, sampling=sampling)

    @torch.inference_mode()
    def generate_from_ids(
        self,
        ids: Sequence[Sequence[int]],
        image_features: torch.Tensor | None,
        max_new_tokens: int,
        sampling: Sampling | None = None,
    ) -> list[list[int]]:
        """Generation from token ids (IMAGE_TOKEN_INDEX where `image_features` go; none for text-only)."""
        if sampling is not None and len(sampling.seeds) != len(ids):
            raise ValueError(f"{len(ids)} prompts but {len(sampling.seeds)} sampling seeds")
        inputs = self.splice(ids, image_features, padding_side="left")
        return self._generate_embeds(
            inputs["inputs_embeds"], inputs["attention_mask"], max_new_tokens, sampling
        )

    @torch.inference_mode()
    def generate_ids_shared(
        self,
        images: Sequence[torch.Tensor],
        prompt_ids: Sequence[Sequence[int]],
        image_keys: Sequence[Hashable],
        max_new_tokens: int,
        sampling: Sampling | None = None,
        prefixes: PrefixStore | None = None,
    ) -> list[list[int]]:
        """`generate_ids` with image-prefix sharing (models/prefix_sharing.py): rows with the same `image_keys`
        entry show the same picture, which is encoded and prefilled once (once per `prefixes` store, which the
        caller may keep across batches of one picture's questions). Each answer equals its unshared one.

        Rows whose prompt cannot be split after one image (see split_prompt) run unshared in a batch of their own.
        """
        if not (len(images) == len(prompt_ids) == len(image_keys)):
            raise ValueError(f"{len(images)} images, {len(prompt_ids)} prompts, {len(image_keys)} keys")
        if sampling is not None and len(sampling.seeds) != len(prompt_ids):
            raise ValueError(f"{len(prompt_ids)} prompts but {len(sampling.seeds)} sampling seeds")
        prefixes = prefixes if prefixes is not None else PrefixStore()
        splits = [
            split_prompt(ids, self.num_image_tokens, self.settings.max_length) if key is not None else None
            for ids, key in zip(prompt_ids, image_keys)
        ]
        results: list[list[int] | None] = [None] * len(prompt_ids)
        classes: dict[int, list[int]] = {}  # prefix length -> rows: one cache holds one prefix length
        for row, split in enumerate(splits):
            if split is not None:
                classes.setdefault(len(split.prefix), []).append(row)
        alone = [row for row, split in enumerate(splits) if split is None]
        split_of = {row: split for row, split in enumerate(splits) if split is not None}
        for rows in classes.values():
            keys = [(image_keys[r], split_of[r].prefix) for r in rows]
            if not self._prefill_prefixes(prefixes, keys, [images[r] for r in rows]):
                alone.extend(rows)  # a cache that drops old tokens (sliding window) cannot be shared
                continue
            embed = self.language_model.get_input_embeddings()
            suffixes = [
                embed(torch.tensor(split_of[r].suffix, dtype=torch.long, device=self.device)) for r in rows
            ]
            embeds, mask = suffix_inputs(suffixes, prefixes.length(keys[0]))
            cache = prefixes.expanded(keys, self.language_model.config)
            answers = self._generate_embeds(
                embeds, mask, max_new_tokens, sampling.rows(rows) if sampling else None, cache=cache
            )
            for r, answer in zip(rows, answers):
                results[r] = answer
        if alone:
            alone.sort()
            features = self.encode_images(self._batch_pixels([images[r] for r in alone]))
            answers = self.generate_from_ids(
                [prompt_ids[r] for r in alone],
                features,
                max_new_tokens,
                sampling=sampling.rows(alone) if sampling else None,
            )
            for r, answer in zip(alone, answers):
                results[r] = answer
        return [answer for answer in results if answer is not None]

    def _prefill_prefixes(
        self, prefixes: PrefixStore, keys: list[tuple[Hashable, tuple[int, ...]]], images: list[torch.Tensor]
    ) -> bool:
        """Encode and prefill, in one batch, each prefix in `keys` not yet in `prefixes`; False if the model's
        cache cannot be shared."""
        missing: dict[tuple[Hashable, tuple[int, ...]], torch.Tensor] = {}
        for key, image in zip(keys, images):
            if key not in prefixes and key not in missing:
                missing[key] = image
        if not missing:
            return True
        features = self.encode_images(self._batch_pixels(list(missing.values())))
        inputs = self.splice([list(prefix) for _, prefix in missing], features)
        output = self.language_model(
            inputs_embeds=inputs["inputs_embeds"],
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            use_cache=True,
            logits_to_keep=1,
        )
        cache = output_cache(output)
        if any(getattr(layer, "is_sliding", False) for layer in cache.layers):
            return False
        prefixes.add(list(missing), cache)
        return True

    def _generate_embeds(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor,
        max_new_tokens: int,
        sampling: Sampling | None,
        cache: Any = None,
    ) -> list[list[int]]:
        """Greedy (or seeded-sampled) answers to left-padded `inputs_embeds`, or, with a prefilled `cache`, to the
        positions of `inputs_embeds` the cache does not hold yet; each list ends at and includes the first EOS."""
        from transformers import LogitsProcessorList

        eos = self.eos_token_ids()
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = eos[0] if eos else 0
        extra = {cache_argument(self.language_model): cache} if cache is not None else {}
        out = self.language_model.generate(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            **extra,
            max_new_tokens=max_new_tokens,
            # sampling runs as a processor on greedy decoding: per-row seeded draws, independent of the batch
            do_sample=False,
            logits_processor=LogitsProcessorList([SeededSampler(sampling)]) if sampling else None,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            use_cache=True,
            pad_token_id=pad,
            eos_token_id=eos or None,
        )
        results = []
        for row in out.tolist():
            end = next((i + 1 for i, tok in enumerate(row) if tok in eos), len(row))
            results.append(row[:end])
        return results

    def eos_token_ids(self) -> list[int]:
        """The stop tokens: the checkpoint's own (legacy generation_config.json, trainer), else the LM's config."""
        eos = self.settings.extra.get("eos_token_id")
        if eos is None:
            eos = getattr(self.language_model.generation_config, "eos_token_id", None)
        if eos is None:
            eos = getattr(self.language_model.config, "eos_token_id", None)
        if eos is None:
            return []
        return list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]

    def generate(
        self,
        images: Sequence[Image.Image | torch.Tensor],
        questions: Sequence[str],
        max_new_tokens: int = 128,
        sampling: Sampling | None = None,
    ) -> list[str]:
        """Answers (greedy unless `sampling`), decoded without special tokens and stripped, as the eval scripts."""
        return self.decode(
            self.generate_ids(images, questions, max_new_tokens=max_new_tokens, sampling=sampling)
        )

    def decode(self, token_ids: Sequence[Sequence[int]]) -> list[str]:
        return [text.strip() for text in self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)]

    # ----- training -----------------------------------------------------------------------------------------------
    def forward(
        self,
        input_ids: Sequence[Sequence[int]],
        labels: Sequence[Sequence[int]] | None = None,
        pixel_values: torch.Tensor | None = None,
    ) -> Any:
        """Language-model output (with `.loss` when labels are given) for right-padded training batches."""
        features = (
            self.encode_images(pixel_values) if pixel_values is not None and len(pixel_values) else None
        )
        inputs = self.splice(input_ids, features, labels=labels, padding_side="right")
        return self.language_model(
            inputs_embeds=inputs["inputs_embeds"],
            attention_mask=inputs["attention_mask"],
            position_ids=inputs["position_ids"],
            labels=inputs.get("labels"),
            use_cache=False,
        )


def _pad(
    sequences: list[torch.Tensor], labels: list[torch.Tensor] | None, padding_side: str
) -> dict[str, torch.Tensor]:
    batch, longest = len(sequences), max(s.shape[0] for s in sequences)
    hidden, device, dtype = sequences[0].shape[1], sequences[0].device, sequences[0].dtype
    embeds = torch.zeros(batch, longest, hidden, dtype=dtype, device=device)
    mask = torch.zeros(batch, longest, dtype=torch.long, device=device)
    positions = torch.zeros(batch, longest, dtype=torch.long, device=device)
    out_labels = torch.full((batch, longest), IGNORE_INDEX, dtype=torch.long, device=device)
    for i, seq in enumerate(sequences):
        n = seq.shape[0]
        span = slice(longest - n, longest) if padding_side == "left" else slice(0, n)
        embeds[i, span] = seq
        mask[i, span] = 1
        positions[i, span] = torch.arange(n, device=device)
        if labels is not None:
            out_labels[i, span] = labels[i]
    result = {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": positions}
    if labels is not None:
        result["labels"] = out_labels
    return result
