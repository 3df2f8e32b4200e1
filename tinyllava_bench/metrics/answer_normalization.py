"""Answer normalisers of the official VQA scorers: GT-Vision-Lab's vqaEval.py and the EvalAI/m4c answer processor.

Both are reproduced with their quirks; every function is pure and cached so that scoring VQAv2-val stays fast.
"""

from __future__ import annotations

import re
from functools import lru_cache

# fmt: off
# The contraction table shared byte-for-byte by vqaEval.py, EvalAI/m4c and lmms-eval. Capitalised keys such as
# "Im" can never match (the text is lower-cased first) and "somebody'd" maps to "somebodyd": both are kept because
# the official scorers have them.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've", "couldnt": "couldn't",
    "couldn'tve": "couldn't've", "couldnt've": "couldn't've", "didnt": "didn't", "doesnt": "doesn't",
    "dont": "don't", "hadnt": "hadn't", "hadnt've": "hadn't've", "hadn'tve": "hadn't've",
    "hasnt": "hasn't", "havent": "haven't", "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've",
    "hes": "he's", "howd": "how'd", "howll": "how'll", "hows": "how's", "Id've": "I'd've",
    "I'dve": "I'd've", "Im": "I'm", "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've",
    "it'dve": "it'd've", "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've", "mustnt": "mustn't",
    "mustve": "must've", "neednt": "needn't", "notve": "not've", "oclock": "o'clock",
    "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at",
    "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've", "she's": "she's",
    "shouldve": "should've", "shouldnt": "shouldn't", "shouldnt've": "shouldn't've",
    "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd", "somebodyd've": "somebody'd've",
    "somebody'dve": "somebody'd've", "somebodyll": "somebody'll", "somebodys": "somebody's",
    "someoned": "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
    "someonell": "someone'll", "someones": "someone's", "somethingd": "something'd",
    "somethingd've": "something'd've", "something'dve": "something'd've", "somethingll": "something'll",
    "thats": "that's", "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've", "weve": "we've",
    "werent": "weren't", "whatll": "what'll", "whatre": "what're", "whats": "what's", "whatve": "what've",
    "whens": "when's", "whered": "where'd", "wheres": "where's", "whereve": "where've", "whod": "who'd",
    "whod've": "who'd've", "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't", "wouldve": "would've",
    "wouldnt": "wouldn't", "wouldnt've": "wouldn't've", "wouldn'tve": "wouldn't've", "yall": "y'all",
    "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've", "y'alld've": "y'all'd've",
    "y'all'dve": "y'all'd've", "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've",
    "youll": "you'll", "youre": "you're", "youve": "you've",
}
# fmt: on

# "none" -> "0" is part of the official map, so the answer "none" matches "0" and "zero".
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip

ARTICLES = frozenset({"a", "an", "the"})

# Characters the official scorers delete or turn into a space. "'", ":", "#", "$", "%", "&", "*", "^", "|" and "~"
# are not among them, so they survive normalisation; periods are handled separately below.
PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")  # fmt: skip

# The official period regex is `(?!<=\d)(\.)(?!\d)`: its first group was meant as a look-behind but is a
# look-ahead for the text "<=digit", which can never follow the "." it guards, so every period not followed by a
# digit goes ("3.5" keeps its point, "e.g." loses both).
_PERIOD_NOT_BEFORE_DIGIT = re.compile(r"\.(?!\d)")
# The official code passes re.UNICODE (== 32) where `sub` takes its count, so at most 32 periods are removed.
_PERIOD_STRIP_LIMIT = int(re.UNICODE)
# vqaEval.py's comma test (`(\d)(\,)(\d)`) and EvalAI's (`(?<=\d)(\,)+(?=\d)`) differ on "1,,2".
_VQA_EVAL_DIGIT_COMMA = re.compile(r"\d,\d")
_EVALAI_DIGIT_COMMA = re.compile(r"\d,+\d")

_NORMALISER_CACHE_SIZE = 1 << 20


def _process_punctuation(text: str, digit_comma: re.Pattern[str]) -> str:
    # A punctuation mark touching a space, or any digit-comma-digit anywhere in the text, deletes that mark;
    # otherwise the mark becomes a space. The tests look at the input text, not the partly processed one.
    delete_all = digit_comma.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if mark not in text:
            continue
        if delete_all or (mark + " ") in text or (" " + mark) in text:
            out = out.replace(mark, "")
        else:
            out = out.replace(mark, " ")
    return _PERIOD_NOT_BEFORE_DIGIT.sub("", out, count=_PERIOD_STRIP_LIMIT)


def vqa_eval_punctuation(text: str) -> str:
    """vqaEval.py's processPunctuation (digit-comma test `\\d,\\d`)."""
    return _process_punctuation(text, _VQA_EVAL_DIGIT_COMMA)


def evalai_punctuation(text: str) -> str:
    """EvalAI/m4c's process_punctuation (digit-comma test `\\d,+\\d`); lmms-eval uses this one too."""
    return _process_punctuation(text, _EVALAI_DIGIT_COMMA)


def process_digit_article(text: str) -> str:
    """Lower-case, split on whitespace, map number words to digits, drop articles, restore contractions."""
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return " ".join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def clean_whitespace(text: str) -> str:
    """The first step both VQA scorers apply to every answer: newlines and tabs to spaces, then strip."""
    return text.replace("\n", " ").replace("\t", " ").strip()


@lru_cache(maxsize=_NORMALISER_CACHE_SIZE)
def vqa_eval_normalize(text: str) -> str:
    """vqaEval.py's normalisation of one answer: processPunctuation then processDigitArticle."""
    return process_digit_article(vqa_eval_punctuation(text))


@lru_cache(maxsize=_NORMALISER_CACHE_SIZE)
def evalai_normalize(text: str) -> str:
    """EvalAI's punctuation and digit/article steps without its tokenising step (what lmms-eval's VQAv2 applies)."""
    return process_digit_article(evalai_punctuation(text))


@lru_cache(maxsize=_NORMALISER_CACHE_SIZE)
def evalai_process(answer: str) -> str:
    """The EvalAI answer processor (LLaVA's m4c_evaluator.EvalAIAnswerProcessor): use it for VQAv2 submissions.

    Lower-cases, deletes "," and "?", splits "'s" off its word ("man's" -> "man 's"), then punctuation and
    digit/article processing as the EvalAI server does.
    """
    text = answer.lower().replace(",", "").replace("?", "").replace("'s", " 's").strip()
    text = clean_whitespace(text)
    return process_digit_article(evalai_punctuation(text))
