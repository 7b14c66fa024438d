"""Checks on generated text that validation cannot make: repetition loops and replies cut off mid-way; and
the sentence counting that lets a reply end on a sentence boundary.

Small models sampled at a useful temperature fall into loops now and then (about 3% of SmolLM2-135M
replies without a repetition penalty; none of 381 in the sample-data demo with the local generator's
mild penalty): the same phrase or sentence over and over until the token cap. Such rows would train the
loop, so they are rejected with `degenerate_repetition` and the repeating phrase as detail.
"""

from __future__ import annotations

import re
from collections import Counter

# A phrase of up to MAX_PERIOD words repeated back to back at least MIN_REPEATS times, covering at least
# MIN_COVERED words ("the the the the ..." and "I can help. I can help. I can help. ..." alike). Lists
# and tables repeat a word or two per line, never a whole phrase three times in a row.
MAX_PERIOD = 12
MIN_REPEATS = 3
MIN_COVERED = 12
# A sentence or line of at least SENTENCE_WORDS words that occurs SENTENCE_REPEATS times anywhere.
SENTENCE_WORDS = 4
SENTENCE_REPEATS = 3
# Long text that uses very few distinct words is a loop too, whatever its period.
LONG_TEXT_WORDS = 80
MIN_DISTINCT_SHARE = 0.25

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
# Where a sentence ends: closing punctuation (and closing quotes or brackets) followed by whitespace. Not the
# dot of a list number or a decimal ("1. Open", "2.5 GB"), nor of "e.g." / "i.e." / "etc." / "vs.".
_SENTENCE_BOUNDARY = re.compile(
    r"(?<![0-9])(?<!\b\w)(?<!\be\.g)(?<!\bi\.e)(?<!\betc)(?<!\bvs)[.!?]+[\"'\u201d\u2019)\]]*(?=\s)"
)


def _tandem_repeat(words: list[str]) -> tuple[str, int] | None:
    n = len(words)
    for period in range(1, MAX_PERIOD + 1):
        run = 0  # positions i where words[i] == words[i - period], consecutively
        for i in range(period, n):
            if words[i] == words[i - period]:
                run += 1
                covered = run + period
                if covered >= MIN_COVERED and covered >= MIN_REPEATS * period:
                    start = i - run - period + 1
                    phrase = " ".join(words[start:start + period])
                    # Markdown rules and table borders ("| --- | --- |") repeat by design.
                    if any(ch.isalnum() for ch in phrase):
                        return phrase, covered // period
            else:
                run = 0
    return None


def repetition_problem(text: str) -> str | None:
    """Why `text` looks like a repetition loop, or None."""
    words = [w.lower() for w in text.split()]
    if len(words) < MIN_COVERED:
        return None
    tandem = _tandem_repeat(words)
    if tandem is not None:
        phrase, times = tandem
        return f"{phrase[:80]!r} repeats {times} times in a row"
    sentences = Counter(
        " ".join(s.lower().split()) for s in _SENTENCE_END.split(text) if len(s.split()) >= SENTENCE_WORDS
    )
    if sentences:
        sentence, times = sentences.most_common(1)[0]
        if times >= SENTENCE_REPEATS:
            return f"{sentence[:80]!r} occurs {times} times"
    if len(words) >= LONG_TEXT_WORDS and len(set(words)) < MIN_DISTINCT_SHARE * len(words):
        return f"{len(set(words))} distinct words in {len(words)}"
    return None


def sentence_end(text: str, sentences: int) -> int | None:
    """Offset just past the closing punctuation of sentence number `sentences`, once the text after it has
    begun (so the sentence is known to be over); None before that."""
    for count, match in enumerate(_SENTENCE_BOUNDARY.finditer(text), start=1):
        if count == sentences:
            return match.end()
    return None


def sentence_count(text: str) -> int:
    """Sentences in a finished text: the boundaries inside it, plus the last sentence."""
    body = text.strip()
    if not body:
        return 0
    ends = [m.end() for m in _SENTENCE_BOUNDARY.finditer(body)]
    return len(ends) + (1 if not ends or body[ends[-1]:].strip() else 0)
