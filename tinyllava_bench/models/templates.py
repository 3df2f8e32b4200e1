"""Conversation templates of the TinyLLaVA family: eval prompts and training strings, byte-exact to SPEC §1."""

from __future__ import annotations

from dataclasses import dataclass

from tinyllava_bench.errors import UserError

IMAGE_PLACEHOLDER = "<image>"
SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)


def image_turn(question: str) -> str:
    """A question that shows the image, as both original codes write it: `<image>` moved to the front on a line of
    its own, the whole stripped, so a turn of `<image>` alone is `<image>` (not `<image>\\n`)."""
    return f"{IMAGE_PLACEHOLDER}\n{question.replace(IMAGE_PLACEHOLDER, '').strip()}".strip()


@dataclass(frozen=True)
class Template:
    """One chat format. `eos` closes every assistant answer in training strings (and is what the loss must learn)."""

    name: str
    eos: str
    system: str = SYSTEM_PROMPT
    user_prefix: str = "USER: "
    assistant_prefix: str = "ASSISTANT: "
    # between the user's text and "ASSISTANT:" ("\n" for HF llava, " " for the TinyLLaVA family)
    turn_separator: str = " "
    has_system: bool = True

    def render_prompt(self, question: str, *, strip_question: bool = False) -> str:
        """The single-turn eval prompt: `{system} USER: <image>\\n{question} ASSISTANT:` (no trailing space).

        `strip_question` follows TinyLLaVA_Factory, whose template removes `<image>` from the question and strips
        surrounding whitespace (an empty question leaves `USER: <image> ASSISTANT:`); the legacy (LLaVA) code keeps
        the question as given (`USER: <image>\\n ASSISTANT:` for an empty one).
        """
        question = image_turn(question) if strip_question else f"{IMAGE_PLACEHOLDER}\n{question}"
        return self._head() + self.user_prefix + question + self.turn_separator + "ASSISTANT:"

    def render_conversation(self, turns: list[tuple[str, str]]) -> tuple[str, list[tuple[int, int]]]:
        """A training string for (question, answer) turns and the character spans the loss covers.

        `{system} USER: <image>\\n{q1} ASSISTANT: {a1}{EOS}USER: {q2} ...`: a question holding `<image>` gets it
        moved to its front (as both original codes do, `image_turn`); text-only conversations have none. Spans cover
        each answer and its EOS.

        An empty answer renders as `ASSISTANT: {EOS}`, TinyLLaVA_Factory's rendering; the legacy (LLaVA) conversation
        code wrote `ASSISTANT:` with no space and no EOS there (docs/training.md).
        """
        text = self._head()
        spans: list[tuple[int, int]] = []
        for question, answer in turns:
            if IMAGE_PLACEHOLDER in question:
                question = image_turn(question)
            text += self.user_prefix + question + self.turn_separator + self.assistant_prefix
            start = len(text)
            text += answer + self.eos
            spans.append((start, len(text)))
        return text, spans

    def _head(self) -> str:
        return self.system + " " if self.has_system else ""


@dataclass(frozen=True)
class PretrainTemplate(Template):
    """Caption pretraining: `<image>{caption}\\n`, no system prompt, loss on the caption (and its newline)."""

    def render_prompt(self, question: str, *, strip_question: bool = False) -> str:
        return IMAGE_PLACEHOLDER

    def render_conversation(self, turns: list[tuple[str, str]]) -> tuple[str, list[tuple[int, int]]]:
        caption = turns[-1][1]
        text = IMAGE_PLACEHOLDER + caption + "\n"
        return text, [(len(IMAGE_PLACEHOLDER), len(text))]


@dataclass(frozen=True)
class HFLlavaTemplate(Template):
    """transformers' llava-hf chat format: `USER: <image>\\n{q}\\nASSISTANT:`."""

    def render_prompt(self, question: str, *, strip_question: bool = False) -> str:
        return f"USER: {IMAGE_PLACEHOLDER}\n{question}\nASSISTANT:"


TEMPLATES: dict[str, Template] = {
    "phi": Template("phi", eos="<|endoftext|>"),
    "v1": Template("v1", eos="</s>"),
    "llama": Template("llama", eos="</s>"),
    "gemma": Template("gemma", eos="<eos>"),
    "qwen2_base": Template("qwen2_base", eos="<|endoftext|>"),
    "qwen2_instruct": Template("qwen2_instruct", eos="<|im_end|>"),
    "pretrain": PretrainTemplate("pretrain", eos="", has_system=False),
    "hf_llava": HFLlavaTemplate("hf_llava", eos="</s>", has_system=False, turn_separator="\n"),
}


def get_template(name: str) -> Template:
    """The template called `name`; an unknown name is a user error listing the known ones."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise UserError(f"unknown template {name!r}; choose one of: {', '.join(TEMPLATES)}") from None
