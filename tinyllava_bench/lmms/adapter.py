"""lmms-eval model `tinyllava_bench`: any TinyLLaVA checkpoint via `load_model`, batched answers and log-likelihoods.

Rules (also in the class docstring): one image per prompt (`multi_image=first|error` for documents with several),
text-only documents use the template without `<image>\\n`, generation as lmms-eval 0.7.3's own `tinyllava` model
(sampling exactly when temperature > 0, seeded; 1024 new tokens when the task gives none; `until` never cuts the
answer unless `cut_at_until=true`), log-likelihoods are losses (-sum log-prob) of the continuation after the prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from lmms_eval.api.instance import GenerationResult, Instance, unwrap_generation_output
from lmms_eval.api.model import lmms
from loguru import logger
from PIL import Image
from tqdm import tqdm

from tinyllava_bench.errors import UserError
from tinyllava_bench.lmms.arguments import boolean, number, positive_int, stop_strings, whole_number
from tinyllava_bench.models.loading import LOAD_OVERRIDES
from tinyllava_bench.models.sampling import Sampling, sample_seed
from tinyllava_bench.models.templates import IMAGE_PLACEHOLDER
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.models.tokenization import IMAGE_TOKEN_INDEX, tokenize_with_images

MULTI_IMAGE_RULES = ("first", "error")
# lmms-eval 0.7.3's tinyllava model: max_new_tokens 1024 when a task gives none, and sampling (temperature > 0)
# with the top_k transformers' GenerationConfig leaves in force (it passes none)
DEFAULT_MAX_NEW_TOKENS = 1024
SAMPLING_TOP_K = 50
DEFAULT_SEED = 0
# lmms-eval 0.7.3 passes every model output through unwrap_generation_output, which turns a (float, bool)
# log-likelihood pair into its string and breaks multiple-choice scoring; a GenerationResult carries it through.
_PAIRS_SURVIVE_LMMS_EVAL = unwrap_generation_output((1.5, True))[0] == (1.5, True)


@dataclass
class _Row:
    """One request made ready for the model: where it goes back, its token ids and its image (or none)."""

    index: int
    ids: list[int]
    image: Image.Image | None
    image_key: Any = None  # requests of one document share the image: encode it once per batch
    continuation_length: int = 0
    seed: int = 0  # generation: the document's sampling stream


class TinyLlavaBench(lmms):
    """TinyLLaVA (legacy, Factory, HF llava or native layout, zoo name or hub id) for lmms-eval.

    model_args: `pretrained` (required), `device` (default cuda if available, else cpu), `dtype` (float32 |
    bfloat16 | float16; default float32 on CPU, float16 on GPU), `batch_size` (wins over the CLI's --batch_size),
    `max_new_tokens` (used when a task gives none; default 1024, lmms-eval's tinyllava's), `cut_at_until`
    (false: the answer is the whole decoded text, as lmms-eval's `tinyllava` and `llava_hf` return it; true: cut
    at the first `until` string and stripped, the convention of lmms-eval's other models), `seed` (sampling
    streams; default 0), `multi_image` (`first`: a document with several images is answered on its first one,
    with a warning; `error`: refuse it), and any load_model override (`template`, `image_aspect`,
    `vision_select`, `vision_layer`, `max_length`, `strip_question`, `connector`, `trust_remote_code`).

    - Prompts: lmms-eval's context is the question, rendered with the checkpoint's template exactly as
      `TinyLlava.generate` does; a `<image>` already in the context is removed (the template places the image).
    - Text-only documents (no visual) get the template without `<image>\\n` and run on the language model alone,
      as LLaVA's ScienceQA script did for questions without an image.
    - Generation follows lmms-eval 0.7.3's `tinyllava` model: a task's `max_new_tokens` (1024 when absent; other
      keys such as `max_gen_toks` are not read, as there); sampling exactly when `temperature` > 0 (its
      `do_sample` is not read), with its `top_p` and transformers' top_k 50, each document drawing from its own
      stream seeded by (seed, task, doc_id) so batches never change an answer; `until` and
      `image_aspect_ratio` are accepted and ignored. The answer is the decoded text, not stripped (lmms-eval
      strips it before scoring). Beam search is not implemented: `num_beams` > 1 gets a warning and one beam.
    - Log-likelihood: returns the loss -sum(log-probs) of the continuation's tokens after the prompt, EOS
      excluded, because lmms-eval 0.7.3 scores multiple choice by argmin. multiple_choice continuations come
      with their delimiter (" red"); the bare target of a `loglikelihood` task gets one space, as the answer
      follows "ASSISTANT: " in training strings. `is_greedy`: greedy decoding would give exactly those tokens.
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str = "",
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int | str = 1,
        max_batch_size: int | None = None,  # lmms-eval always passes it; batches are fixed at batch_size
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        cut_at_until: bool | str = False,
        seed: int | str = DEFAULT_SEED,
        multi_image: str = "first",
        **overrides: Any,
    ) -> None:
        super().__init__()
        if not pretrained:
            raise UserError(
                "tinyllava_bench: model_args needs pretrained=PATH_OR_ID (a folder, zoo name or hub id)"
            )
        unknown = sorted(set(overrides) - set(LOAD_OVERRIDES))
        if unknown:
            raise UserError(
                f"tinyllava_bench: unknown model_args {', '.join(unknown)}; known: pretrained, device, dtype, "
                f"batch_size, max_new_tokens, cut_at_until, seed, multi_image, {', '.join(LOAD_OVERRIDES)}"
            )
        if multi_image not in MULTI_IMAGE_RULES:
            raise UserError(
                f"tinyllava_bench: multi_image={multi_image!r}; use one of {', '.join(MULTI_IMAGE_RULES)}"
            )
        self._batch_size = positive_int(batch_size, "batch_size")
        self.default_max_new_tokens = positive_int(max_new_tokens, "max_new_tokens")
        self.cut_at_until = boolean(cut_at_until, "cut_at_until")
        if (
            "trust_remote_code" in overrides
        ):  # model_args is text: "false" must mean False, never bool("false")
            overrides["trust_remote_code"] = boolean(overrides["trust_remote_code"], "trust_remote_code")
        self.seed = whole_number(seed, "seed")
        self.multi_image = multi_image
        self._warned: set[str] = set()

        device = self._setup_processes(device)
        from tinyllava_bench.models.loading import load_model

        self._model: TinyLlava = load_model(str(pretrained), device=device, dtype=dtype, **overrides)
        self._device = torch.device(device)

    def _setup_processes(self, device: str | None) -> str:
        """Data parallel under `accelerate launch` / torchrun: one model per process, lmms-eval shards requests."""
        from accelerate import Accelerator

        accelerator = Accelerator()
        if accelerator.num_processes > 1:
            self.accelerator = accelerator
            self._rank = accelerator.process_index
            self._world_size = accelerator.num_processes
            # one GPU per process: a bare "cuda" would put every process on the first one
            return str(accelerator.device) if device in (None, "cuda") else str(device)
        if device is None:
            return "cuda" if torch.cuda.is_available() else "cpu"
        return str(device)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None) -> TinyLlavaBench:
        """model_args, then the CLI's settings (--batch_size, --device) for what model_args leaves out."""
        from lmms_eval.utils import simple_parse_args_string

        args = simple_parse_args_string(arg_string)
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in args}
        return cls(**args, **extra)

    # ----- what lmms-eval reads --------------------------------------------------------------------------------
    @property
    def model(self) -> TinyLlava:
        return self._model

    @property
    def tokenizer(self) -> Any:
        return self._model.tokenizer

    @property
    def batch_size(self) -> int:
        return self._batch_size

    @property
    def device(self) -> torch.device:
        return self._device

    # ----- prompts and images ----------------------------------------------------------------------------------
    def encode_text(self, text: str) -> list[int]:
        """Token ids of a rendered prompt (or prompt + continuation), with `<image>` as IMAGE_TOKEN_INDEX."""
        image_token_id = self._model.settings.extra.get("image_token_id")
        if image_token_id is None:
            return tokenize_with_images(text, self.tokenizer)
        # HF llava tokenises the whole string, `<image>` being a special token of its tokenizer
        return [IMAGE_TOKEN_INDEX if t == image_token_id else t for t in self.tokenizer(text).input_ids]

    def render_prompt(self, context: str, with_image: bool) -> str:
        """The model's eval prompt for lmms-eval's context; text-only prompts have no `<image>\\n`."""
        if IMAGE_PLACEHOLDER in context:
            context = context.replace(IMAGE_PLACEHOLDER, "").strip()
        prompt = self._model.render_prompt(context)
        if not with_image:
            prompt = prompt.replace(IMAGE_PLACEHOLDER + "\n", "", 1).replace(IMAGE_PLACEHOLDER, "")
        return prompt

    def document_image(
        self, doc_to_visual: Callable | None, doc_id: Any, task: str, split: str
    ) -> Image.Image | None:
        """The one image TinyLLaVA sees for a document (None for text-only documents)."""
        if doc_to_visual is None:
            return None
        visuals = doc_to_visual(self.task_dict[task][split][doc_id])
        images = list(_flatten(visuals))
        for visual in images:
            if not isinstance(visual, Image.Image):
                raise UserError(
                    f"tinyllava_bench: task {task} gives a {type(visual).__name__} visual; "
                    "TinyLLaVA takes images only (no video or audio)"
                )
        if len(images) > 1:
            if self.multi_image == "error":
                raise UserError(
                    f"tinyllava_bench: task {task} document {doc_id} has {len(images)} images and TinyLLaVA takes "
                    "one; drop multi_image=error from model_args to answer on the first image"
                )
            self._warn_once(
                f"multi:{task}",
                f"task {task}: documents with several images (here {len(images)}) are answered on the first "
                "image only (TinyLLaVA takes one image; multi_image=error refuses them)",
            )
        return images[0] if images else None

    # ----- generation --------------------------------------------------------------------------------------------
    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answers as lmms-eval's `tinyllava` gives them (see the class docstring); batches of `batch_size`
        prompts of similar length and the same settings."""
        rows, stops, settings = [], [], []
        for index, request in enumerate(requests):
            context, gen_kwargs, doc_to_visual, doc_id, task, split = request.args[:6]
            gen_kwargs = dict(gen_kwargs or {})
            image = self.document_image(doc_to_visual, doc_id, task, split)
            prompt_ids = self.encode_text(self.render_prompt(context, with_image=image is not None))
            rows.append(_Row(index, prompt_ids, image, seed=sample_seed(self.seed, task, doc_id)))
            stops.append(stop_strings(gen_kwargs.get("until")))
            settings.append(self._decoding(task, gen_kwargs))

        answers: list[str] = [""] * len(requests)
        groups = _group(rows, key=lambda row: (row.image is not None, settings[row.index]))
        progress = tqdm(total=len(rows), disable=self.rank != 0, desc="tinyllava_bench generate")
        for (has_image, (budget, temperature, top_p)), group in groups.items():
            for batch in _batches(group, self.batch_size):
                ids = [row.ids for row in batch]
                sampling = None
                if temperature > 0:
                    seeds = tuple(row.seed for row in batch)
                    sampling = Sampling(temperature, seeds, top_k=SAMPLING_TOP_K, top_p=top_p)
                if has_image:
                    # every row of the group has an image (the group key); generate_ids checks the counts match
                    images = [row.image for row in batch if row.image is not None]
                    token_ids = self._model.generate_ids(
                        images, [""] * len(batch), budget, prompt_ids=ids, sampling=sampling
                    )
                else:
                    token_ids = self._model.generate_from_ids(ids, None, budget, sampling=sampling)
                texts = self.tokenizer.batch_decode(token_ids, skip_special_tokens=True)
                for row, text in zip(batch, texts):
                    if self.cut_at_until:
                        text = _cut_at_stop(text, stops[row.index]).strip()
                    answers[row.index] = text
                progress.update(len(batch))
        progress.close()
        return answers

    def _decoding(self, task: str, gen_kwargs: dict[str, Any]) -> tuple[int, float, float | None]:
        """(max_new_tokens, temperature, top_p) read from a request as lmms-eval's tinyllava reads them."""
        value = gen_kwargs.get("max_new_tokens")
        budget = self.default_max_new_tokens if value is None else positive_int(value, "max_new_tokens")
        temperature = number(gen_kwargs.get("temperature", 0) or 0, "temperature")
        top_p = gen_kwargs.get("top_p")
        top_p = None if top_p is None else number(top_p, "top_p")
        if temperature < 0 or (top_p is not None and not 0 < top_p <= 1):
            raise UserError(
                f"tinyllava_bench: task {task} asks for temperature={temperature}, top_p={top_p}; "
                "give temperature >= 0 and top_p in (0, 1]"
            )
        if int(gen_kwargs.get("num_beams") or 1) > 1:
            self._warn_once(
                f"beams:{task}",
                f"task {task} asks for beam search; tinyllava_bench decodes with one beam "
                f"({'sampling' if temperature > 0 else 'greedy'})",
            )
        return budget, temperature if temperature > 0 else 0.0, top_p if temperature > 0 else None

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        raise NotImplementedError(
            "tinyllava_bench answers single-turn prompts only; multi-round tasks are not supported"
        )

    # ----- log-likelihood -----------------------------------------------------------------------------------------
    def loglikelihood(self, requests: list[Instance]) -> list[Any]:
        """(negative log-likelihood of the continuation, whether greedy decoding gives it) per request.

        A loss, not a log-prob: lmms-eval 0.7.3 picks a multiple-choice answer by argmin (its own models return
        losses). Each pair is wrapped in a GenerationResult when lmms-eval would otherwise turn it into a string.
        """
        rows = []
        for index, request in enumerate(requests):
            args = request.args
            context, target = args[0], args[1]
            image, image_key = None, None
            if len(args) >= 6:
                doc_to_visual, doc_id, task, split = args[2:6]
                if callable(target):
                    # `loglikelihood` tasks pass doc_to_target, whose answer has no delimiter: it follows
                    # "ASSISTANT: " as in training strings (multiple_choice continuations bring their own " ")
                    target = str(target(self.task_dict[task][split][doc_id]))
                    target = target if not target or target[0].isspace() else " " + target
                image = self.document_image(doc_to_visual, doc_id, task, split)
                image_key = (task, split, doc_id)
            rows.append(self._scoring_row(index, context, str(target), image, image_key))

        results: list[tuple[float, bool]] = [(0.0, True)] * len(requests)
        progress = tqdm(total=len(rows), disable=self.rank != 0, desc="tinyllava_bench loglikelihood")
        for batch in _batches(rows, self.batch_size):
            for row, result in zip(batch, self._score_batch(batch)):
                results[row.index] = result
            progress.update(len(batch))
        progress.close()
        if not _PAIRS_SURVIVE_LMMS_EVAL:
            return [GenerationResult(text=pair) for pair in results]
        return results

    def _scoring_row(
        self, index: int, context: str, continuation: str, image: Image.Image | None, image_key: Any
    ) -> _Row:
        prompt = self.render_prompt(context, with_image=image is not None)
        context_length = len(self.encode_text(prompt))
        whole = self.encode_text(prompt + continuation)
        row = _Row(index, whole, image, image_key, continuation_length=len(whole) - context_length)
        expanded = len(whole) + (self._model.num_image_tokens - 1) * whole.count(IMAGE_TOKEN_INDEX)
        limit = self._model.settings.max_length
        if limit is not None and expanded > limit:
            raise UserError(
                f"tinyllava_bench: prompt and continuation take {expanded} tokens, over the model's max_length "
                f"{limit}; pass max_length=N in model_args to raise it"
            )
        return row

    @torch.inference_mode()
    def _score_batch(self, batch: list[_Row]) -> list[tuple[float, bool]]:
        features = None
        keys = [row.image_key for row in batch if row.image is not None]
        if keys:
            unique = list(dict.fromkeys(keys))
            images = {row.image_key: row.image for row in batch if row.image is not None}
            pixels = torch.stack([self._model.pixel_values(images[k]) for k in unique])
            encoded = self._model.encode_images(pixels)
            features = encoded[[unique.index(k) for k in keys]]
        inputs = self._model.splice([row.ids for row in batch], features, padding_side="left")
        keep = max(row.continuation_length for row in batch) + 1
        logits = self._language_logits(inputs, keep)
        results = []
        for i, row in enumerate(batch):
            n = row.continuation_length
            if n <= 0:
                results.append((0.0, True))
                continue
            # left padded: every row ends at the last position, whose logits predict past the end
            row_logits = logits[i, -(n + 1) : -1].float().log_softmax(-1)
            target = torch.tensor(row.ids[-n:], device=row_logits.device)
            loss = -row_logits.gather(1, target[:, None]).sum().item()
            results.append((float(loss), bool((row_logits.argmax(-1) == target).all())))
        return results

    def _language_logits(self, inputs: dict[str, torch.Tensor], keep: int) -> torch.Tensor:
        call = {
            "inputs_embeds": inputs["inputs_embeds"],
            "attention_mask": inputs["attention_mask"],
            "position_ids": inputs["position_ids"],
            "use_cache": False,
        }
        try:  # only the last positions are needed: vocab-sized logits for the whole prompt are large
            return self._model.language_model(**call, logits_to_keep=keep).logits
        except TypeError:  # remote-code LMs without logits_to_keep
            return self._model.language_model(**call).logits

    # ----- misc -------------------------------------------------------------------------------------------------
    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(f"tinyllava_bench: {message}")


def _flatten(visuals: Any) -> Iterator[Any]:
    if visuals is None:
        return
    if isinstance(visuals, (list, tuple)):
        for item in visuals:
            yield from _flatten(item)
    else:
        yield visuals


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to the earliest stop string (the one that would have stopped generation first)."""
    end = min((position for s in stops if (position := text.find(s)) >= 0), default=len(text))
    return text[:end]


def _group(rows: list[_Row], key: Callable[[_Row], Any]) -> dict[Any, list[_Row]]:
    groups: dict[Any, list[_Row]] = {}
    for row in rows:
        groups.setdefault(key(row), []).append(row)
    return groups


def _batches(rows: list[_Row], size: int) -> Iterator[list[_Row]]:
    """Longest prompts first (memory trouble shows at once), so each batch holds prompts of similar length."""
    ordered = sorted(rows, key=lambda row: (-len(row.ids), row.index))
    for start in range(0, len(ordered), size):
        yield ordered[start : start + size]
