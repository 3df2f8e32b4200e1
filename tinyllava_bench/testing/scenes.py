"""The demo world's pictures: small scenes of coloured shapes or written words, sampled by seed and drawn with PIL.

Scenes are split once and for all into an eval part and a train part (by a hash of what they show), so demo
training data never contains an image that a demo benchmark asks about, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import io
import random
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

# Flat colours, drawn without anti-aliasing: every shape pixel is exactly its palette colour.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 200, 20),
    "purple": (140, 50, 180),
    "orange": (245, 130, 20),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "gray": (228, 228, 228),
    "cream": (250, 244, 226),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom")
WORD_POSITIONS = ("top", "center", "bottom")
WORDS = (
    "CAT",
    "DOG",
    "SUN",
    "CAR",
    "BUS",
    "HAT",
    "BOX",
    "CUP",
    "PEN",
    "MAP",
    "KEY",
    "EGG",
    "FOX",
    "OWL",
    "BEE",
    "ANT",
)
# odd, non-square sizes on purpose: they exercise pad-to-square and resize paths
IMAGE_SIZES = ((64, 64), (72, 56), (56, 72), (80, 64))
# At most three shapes a picture: enough for "which one" questions, few enough for the demo's models to learn them
# in minutes (with up to four they answered colour questions half as well; with two, both recipes did the same).
MAX_SHAPES = 3
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")

# Where a shape sits, as fractions of width and height; far enough apart that shapes never touch.
_SLOT_CENTERS = {"left": (0.2, 0.5), "right": (0.8, 0.5), "top": (0.5, 0.2), "bottom": (0.5, 0.8)}
_WORD_CENTER_Y = {"top": 0.25, "center": 0.5, "bottom": 0.75}
_TEXT_SCALE = 2  # the bitmap font is 11 px tall; doubled so words stay legible after resizing to 336-384 px
_EVAL_BUCKETS = 4  # one scene in four belongs to the eval part


@dataclass(frozen=True)
class Shape:
    """One filled shape in one of the four slots."""

    kind: str
    color: str
    position: str
    radius: int


@dataclass(frozen=True)
class Word:
    """One written word (or arithmetic expression), centred horizontally at `position`."""

    text: str
    color: str
    position: str


@dataclass(frozen=True)
class Scene:
    """What one image shows. Shapes in a scene have distinct colours and slots; words distinct colours."""

    width: int
    height: int
    background: str
    shapes: tuple[Shape, ...] = field(default=())
    words: tuple[Word, ...] = field(default=())

    def signature(self) -> str:
        return repr((self.width, self.height, self.background, self.shapes, self.words))

    def split(self) -> str:
        """ "eval" or "train": fixed by what the scene shows, not by the seed that drew it."""
        digest = hashlib.sha256(self.signature().encode()).digest()
        return "eval" if int.from_bytes(digest[:8], "big") % _EVAL_BUCKETS == 0 else "train"

    def shape_at(self, position: str) -> Shape | None:
        return next((shape for shape in self.shapes if shape.position == position), None)

    def word_at(self, position: str) -> Word | None:
        return next((word for word in self.words if word.position == position), None)


def seeded_rng(*parts: object) -> random.Random:
    """A random generator fixed by `parts` (text seeds hash through sha512: same on every platform and run)."""
    return random.Random(":".join(str(part) for part in ("tinyllava-demo", *parts)))


def _canvas(rng: random.Random) -> tuple[int, int, str]:
    width, height = rng.choice(IMAGE_SIZES)
    return width, height, rng.choice(list(BACKGROUNDS))


def _draw_shape_scene(rng: random.Random, count: int | None) -> Scene:
    width, height, background = _canvas(rng)
    count = count if count is not None else rng.randint(1, MAX_SHAPES)
    positions = sorted(rng.sample(POSITIONS, count), key=POSITIONS.index)
    colors = rng.sample(list(COLORS), count)
    full = round(0.14 * min(width, height))
    shapes = tuple(
        Shape(rng.choice(SHAPES), color, position, max(5, round(full * rng.choice((0.75, 0.875, 1.0)))))
        for position, color in zip(positions, colors)
    )
    return Scene(width, height, background, shapes=shapes)


def _draw_text_scene(rng: random.Random, count: int | None) -> Scene:
    width, height, background = _canvas(rng)
    count = count if count is not None else rng.randint(1, 2)
    texts = rng.sample(WORDS, count)
    colors = rng.sample(list(COLORS), count)
    positions = [rng.choice(WORD_POSITIONS)] if count == 1 else ["top", "bottom"]
    words = tuple(Word(text, color, position) for text, color, position in zip(texts, colors, positions))
    return Scene(width, height, background, words=words)


def _draw_arithmetic_scene(rng: random.Random) -> Scene:
    width, height, background = _canvas(rng)
    left, right = rng.randint(1, 9), rng.randint(1, 9)
    word = Word(f"{left}+{right}=", rng.choice(list(COLORS)), "center")
    return Scene(width, height, background, words=(word,))


def sample_scene(rng: random.Random, kind: str, split: str, count: int | None = None) -> Scene:
    """A scene of `kind` (shapes, text, arithmetic) from the `split` part (eval or train) of the world."""
    if split not in ("eval", "train"):
        raise ValueError(f"split must be 'eval' or 'train', got {split!r}")
    draw = {
        "shapes": lambda: _draw_shape_scene(rng, count),
        "text": lambda: _draw_text_scene(rng, count),
        "arithmetic": lambda: _draw_arithmetic_scene(rng),
    }[kind]
    while True:  # rejection keeps the distribution within a part the same as the world's
        scene = draw()
        if scene.split() == split:
            return scene


def scene_kind(scene: Scene) -> str:
    """ "shapes", "text" or "arithmetic": what sample_scene was asked for."""
    if scene.shapes:
        return "shapes"
    return "arithmetic" if scene.words and "+" in scene.words[0].text else "text"


def arithmetic_value(word: Word) -> int:
    """The answer to an "a+b=" expression."""
    left, right = word.text.rstrip("=").split("+")
    return int(left) + int(right)


def cell_words(scene: Scene, grid: int) -> list[list[str]]:
    """What the picture shows in each cell of a grid x grid split of its padded square, row by row: the colour and
    kind of a shape, or the colour and lower-cased text of a word, in the cell holding its centre; the background
    colour elsewhere. The cells are the vision tower's patches when the image is padded to a square (the demo's
    `image_aspect: pad`) and resized to grid x patch pixels: the demo LLM reads these words in their place."""
    side = max(scene.width, scene.height)
    # where expand_to_square puts the picture in its padded square
    left, top = (side - scene.width) // 2, (side - scene.height) // 2

    def cell(fx: float, fy: float) -> int:
        x, y = left + fx * scene.width, top + fy * scene.height
        return min(grid - 1, int(y * grid / side)) * grid + min(grid - 1, int(x * grid / side))

    cells = [[scene.background] for _ in range(grid * grid)]
    for shape in scene.shapes:
        cells[cell(*_SLOT_CENTERS[shape.position])] = [shape.color, shape.kind]
    for word in scene.words:
        cells[cell(0.5, _WORD_CENTER_Y[word.position])] = [word.color, word.text.lower()]
    return cells


def render_scene(scene: Scene) -> Image.Image:
    """Draw the scene as an RGB image of scene.width x scene.height."""
    image = Image.new("RGB", (scene.width, scene.height), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(image)
    for shape in scene.shapes:
        fx, fy = _SLOT_CENTERS[shape.position]
        cx, cy, r = round(fx * scene.width), round(fy * scene.height), shape.radius
        color = COLORS[shape.color]
        if shape.kind == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
        elif shape.kind == "square":
            draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=color)
        else:
            draw.polygon(((cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)), fill=color)
    for word in scene.words:
        _paste_word(image, word)
    return image


def _paste_word(image: Image.Image, word: Word) -> None:
    font = ImageFont.load_default_imagefont()  # PIL's built-in bitmap font: crisp pixels, no system fonts
    left, top, right, bottom = font.getbbox(word.text)
    mask = Image.new("L", (right, bottom), 0)
    ImageDraw.Draw(mask).text((0, 0), word.text, font=font, fill=255)
    mask = mask.resize((right * _TEXT_SCALE, bottom * _TEXT_SCALE), Image.Resampling.NEAREST)
    x = round((image.width - mask.width) / 2)
    y = round(_WORD_CENTER_Y[word.position] * image.height - mask.height / 2)
    image.paste(Image.new("RGB", mask.size, COLORS[word.color]), (x, y), mask)


def png_bytes(image: Image.Image) -> bytes:
    """PNG bytes of `image` (lossless, so pixel colours survive; the same image always gives the same bytes)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def position_phrase(position: str) -> str:
    """ "on the left", "at the top", "in the center"."""
    return {"left": "on the left", "right": "on the right", "center": "in the center"}.get(
        position, f"at the {position}"
    )


def with_article(noun_phrase: str) -> str:
    """ "a red circle", "an orange circle"."""
    return ("an " if noun_phrase[0] in "aeiou" else "a ") + noun_phrase


def plural(kind: str, count: int) -> str:
    return kind if count == 1 else kind + "s"


def _join(parts: list[str]) -> str:
    if len(parts) <= 2:
        return " and ".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _shape_phrase(shape: Shape) -> str:
    return f"{with_article(f'{shape.color} {shape.kind}')} {position_phrase(shape.position)}"


def _word_phrase(word: Word) -> str:
    return f'the text "{word.text}" in {word.color} {position_phrase(word.position)}'


def brief_caption(scene: Scene) -> str:
    """One sentence saying everything the scene shows."""
    parts = [_shape_phrase(shape) for shape in scene.shapes] + [_word_phrase(word) for word in scene.words]
    sentence = _join(parts)
    return f"{sentence[0].upper()}{sentence[1:]} on a {scene.background} background."


def detailed_caption(scene: Scene) -> str:
    """A few sentences: counts, each object, and the background (the LLaVA-W / MM-Vet style of answer)."""
    sentences = []
    if scene.shapes:
        count = len(scene.shapes)
        sentences.append(
            f"The image shows {NUMBER_WORDS[count]} {plural('shape', count)} on a {scene.background} background."
        )
        for shape in scene.shapes:
            thing = with_article(f"{shape.color} {shape.kind}")
            sentences.append(f"There is {thing} {position_phrase(shape.position)}.")
        kinds = [kind for kind in SHAPES if any(shape.kind == kind for shape in scene.shapes)]
        counted = [
            f"{NUMBER_WORDS[n]} {plural(kind, n)}" for kind in kinds for n in [_kind_count(scene, kind)]
        ]
        sentences.append(f"That makes {_join(counted)} in all.")
    if scene.words:
        sentences.append(f"The image shows writing on a {scene.background} background.")
        for word in scene.words:
            sentences.append(
                f'The text "{word.text}" is written in {word.color} {position_phrase(word.position)}.'
            )
    return " ".join(sentences)


def _kind_count(scene: Scene, kind: str) -> int:
    return sum(shape.kind == kind for shape in scene.shapes)
