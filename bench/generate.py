"""Generate N synthetic support-chat examples as JSONL, with planted duplicates and their ground truth.

    python bench/generate.py --rows 100000 --out /tmp/chat100k.jsonl [--seed 0]

Each line is `{"category": ..., "messages": [system, user, assistant]}`: a system prompt (one of a few long
ones, shared by many rows), a user turn of 20–200 words and an assistant turn of 50–400 words (log-uniform,
so most turns are short, as in real support data), drawn from a Zipf-distributed vocabulary — real common
English words at the head, pronounceable made-up words in the tail — with each category's topic words mixed
in. Some rows open their user turn with a long shared instruction template (distinct rows that must be kept).

Planted copies, each of an earlier-generated base row in the same block of BLOCK rows (rows of a block are
shuffled after planting, so copies land before and after their originals):
  exact         the same example with case changes, doubled spaces / line breaks and a different key order;
  near_edit     5–15% of the words of user and assistant substituted, deleted or inserted;
  near_reorder  the sentences of the user and assistant turns shuffled.
The truth file (`<out>.truth.jsonl` unless --truth) has one line per planted copy:
`{"kind", "original": line, "copy": line, "edit_rate"}` with 1-based line numbers of the JSONL.

Text is sampled as word ids with numpy (Zipf via a precomputed urn) and rendered per block with one
`bytes.join`, so 1,000,000 rows (1.89 GB) took 104 s on the loaded 2-core development machine.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import orjson

BLOCK = 50_000

COMMON = (
    "the of and to a in is you that it for your on with this be are as can we at have or if not by from will "
    "an all but was our they there so do which one more when what has can't any about would their out up "
    "should also please been other just some time how may these new than only them into its like then most "
    "could see use account order help need make get thank first please know after over back because each "
    "through same both well where while before now even here payment team number issue problem support "
    "service customer email message request information update change check working system settings "
    "option page report data file access password login user product price plan invoice card bank "
    "refund delivery shipping address business week day month year today soon again sure right able "
    "still find send receive share note follow step steps click open select enter save continue review "
    "confirm cancel contact call reply resolve case detail details status process available current "
    "different possible following another every many much very really always never usually already "
    "however instead although unless whether within without between during across against around"
).split()

TOPICS = {
    "billing": "invoice charge charged billing refund payment card subscription renewal receipt tax discount "
               "credit overdue balance statement",
    "technical": "error crash browser app server sync install update version bug timeout cache network "
                 "connection firmware restart",
    "account": "password login username profile security verification email locked reset settings permission "
               "role admin workspace",
    "shipping": "package parcel courier tracking delivery warehouse dispatch address label carrier delay "
                "customs pickup route",
    "returns": "return exchange damaged wrong size label warranty replacement condition packaging policy "
               "window store credit",
    "other": "feedback partnership press career event feature suggestion survey newsletter community "
             "forum webinar demo",
}
LABEL_SHARES = {"billing": 0.35, "technical": 0.25, "account": 0.15, "shipping": 0.12, "returns": 0.08, "other": 0.05}

SYSTEM_PROMPTS = (
    "You are a helpful customer support assistant for Acme Cloud. Answer politely and precisely, use short "
    "paragraphs, never invent account details, ask for the order number when it is missing, and hand the "
    "conversation to a human agent when the customer asks for one or when money is involved.",
    "You are the support assistant of a small online shop. Be friendly and brief. Explain the steps the "
    "customer has to take, mention the relevant policy, and if you are not sure about something say so and "
    "offer to open a ticket with the team instead of guessing.",
    "Act as a technical support engineer. Diagnose before you suggest fixes, ask for versions and error "
    "messages, give numbered steps, warn before anything that deletes data, and close with a short summary "
    "of what the customer should try next.",
)
TEMPLATES = (
    "Read the customer message below carefully. Identify what the customer is asking for, which product or "
    "order it concerns, and whether anything is missing. Then write the reply a senior support agent would "
    "send, in a calm and professional tone, without promising anything the policy does not allow. Message:",
    "The following text was submitted through the contact form on our website. Classify the request, find "
    "the facts the customer gives, and answer the question directly. Keep the answer short and do not repeat "
    "the question back to the customer. Contact form text:",
)
TEMPLATE_RATE = 0.1
EXACT_RATE = 0.03
NEAR_EDIT_RATE = 0.035
NEAR_REORDER_RATE = 0.015
VOCAB_SIZE = 30_000
ZIPF_EXPONENT = 1.1
URN_BITS = 24
TOPIC_RATE = 0.08
SENTENCE_END = 1 / 11
# Forms of a word: plain, sentence-initial, sentence-final ".", final "?", initial and final.
PLAIN, INITIAL, FINAL_DOT, FINAL_Q, INITIAL_DOT = range(5)
FORMS = 5


def pseudo_words(rng: np.random.Generator, count: int, taken: set[str]) -> list[str]:
    onsets = "b c d f g h j k l m n p r s t v w z br dr gr pl st th tr".split()
    vowels = "a e i o u a e i o u ai ea ee oo ou".split()
    codas = ["", "", "", "", "n", "r", "s", "t", "l", "nd", "st"]
    words: list[str] = []
    seen = set(taken)
    while len(words) < count:
        syllables = 1 + int(rng.random() < 0.6) + int(rng.random() < 0.2)
        word = "".join(
            onsets[rng.integers(len(onsets))] + vowels[rng.integers(len(vowels))] + codas[rng.integers(len(codas))]
            for _ in range(syllables)
        )
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


class Vocabulary:
    def __init__(self, rng: np.random.Generator) -> None:
        common = list(dict.fromkeys(COMMON))
        topic_words = sorted({w for words in TOPICS.values() for w in words.split()} - set(common))
        self.words = common + topic_words + pseudo_words(rng, VOCAB_SIZE - len(common) - len(topic_words), set(common))
        ranks = np.arange(len(self.words), dtype=np.float64)
        zipf = 1.0 / (ranks + 2.7) ** ZIPF_EXPONENT
        counts = np.maximum(1, np.round(zipf / zipf.sum() * (1 << URN_BITS))).astype(np.int64)
        self.urn = np.repeat(np.arange(len(self.words), dtype=np.int32), counts)
        index = {w: i for i, w in enumerate(self.words)}
        self.topics = {label: np.array([index[w] for w in words.split()], dtype=np.int32) for label, words in TOPICS.items()}
        forms = []
        for word in self.words:
            cap = word[0].upper() + word[1:]
            forms += [word + " ", cap + " ", word + ". ", word + "? ", cap + ". "]
        self.encoded = [f.encode() for f in forms]
        self.form_len = np.array([len(f) for f in self.encoded], dtype=np.int64)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.urn[rng.integers(0, len(self.urn), n)]

    def render(self, forms: np.ndarray) -> bytes:
        """Bytes of a sequence of form ids (word * FORMS + form)."""
        return b"".join(map(self.encoded.__getitem__, forms.tolist()))


def log_uniform(rng: np.random.Generator, low: int, high: int, n: int) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high + 1), n)).astype(np.int64)


def sentence_forms(rng: np.random.Generator, words: np.ndarray, lengths: np.ndarray, question: np.ndarray) -> np.ndarray:
    """Form ids for consecutive turns of `words`: capitalised sentence starts, '.' ends, a '?' at the end of
    each turn whose `question` flag is set."""
    n = len(words)
    ends = rng.random(n) < SENTENCE_END
    turn_end = np.cumsum(lengths) - 1
    ends[turn_end] = True
    starts = np.zeros(n, dtype=bool)
    starts[0] = True
    starts[1:] = ends[:-1]
    form = np.full(n, PLAIN, dtype=np.int64)
    form[starts] = INITIAL
    form[ends] = FINAL_DOT
    form[starts & ends] = INITIAL_DOT
    asked = turn_end[question & ~starts[turn_end]]
    form[asked] = FINAL_Q
    return words.astype(np.int64) * FORMS + form


def segments(flat: np.ndarray, lengths: np.ndarray) -> list[np.ndarray]:
    return np.split(flat, np.cumsum(lengths)[:-1])


def edit(rng: np.random.Generator, vocab: Vocabulary, forms: np.ndarray, rate: float) -> np.ndarray:
    """Substitute (60%), delete (20%) or insert (20%) round(rate * len) words at distinct positions."""
    n = len(forms)
    m = max(1, round(rate * n))
    positions = rng.choice(n, size=min(m, n), replace=False)
    kind = rng.random(len(positions))
    out = forms.copy()
    subs = positions[kind < 0.6]
    out[subs] = vocab.sample(rng, len(subs)).astype(np.int64) * FORMS + out[subs] % FORMS
    inserts = positions[kind >= 0.8]
    deletes = positions[(kind >= 0.6) & (kind < 0.8)]
    keep = np.ones(n, dtype=bool)
    keep[deletes] = False
    new = vocab.sample(rng, len(inserts)).astype(np.int64) * FORMS + PLAIN
    out = np.insert(out, inserts, new)
    keep = np.insert(keep, inserts, True)
    return out[keep]


def reorder(rng: np.random.Generator, forms: np.ndarray) -> np.ndarray:
    kinds = forms % FORMS
    ends = np.flatnonzero((kinds == FINAL_DOT) | (kinds == FINAL_Q) | (kinds == INITIAL_DOT)) + 1
    sentences = np.split(forms, ends[:-1]) if len(ends) else [forms]
    if len(sentences) < 2:
        return forms
    order = rng.permutation(len(sentences))
    while np.array_equal(order, np.arange(len(sentences))):
        order = rng.permutation(len(sentences))
    return np.concatenate([sentences[i] for i in order])


def vary_exact(rng: np.random.Generator, text: str) -> str:
    """Same text up to case and whitespace: what exact dedup must still see as one."""
    choice = rng.integers(3)
    if choice == 0:
        text = text.lower()
    elif choice == 1:
        text = text.upper()
    else:
        text = text.title()
    return text.replace(". ", ".  ", 2).replace("? ", "?\n", 1)


def generate_block(rng: np.random.Generator, vocab: Vocabulary, n: int, first_line: int) -> tuple[list[bytes], list[dict]]:
    copies = {"exact": round(n * EXACT_RATE), "near_edit": round(n * NEAR_EDIT_RATE), "near_reorder": round(n * NEAR_REORDER_RATE)}
    base = n - sum(copies.values())
    labels = rng.choice(list(LABEL_SHARES), size=base, p=list(LABEL_SHARES.values()))
    lengths = np.stack([log_uniform(rng, 20, 200, base), log_uniform(rng, 50, 400, base)], axis=1).ravel()
    words = vocab.sample(rng, int(lengths.sum()))
    token_label = np.repeat(np.repeat(labels, 2), lengths)
    topical = np.flatnonzero(rng.random(len(words)) < TOPIC_RATE)
    for label, topic in vocab.topics.items():
        at = topical[token_label[topical] == label]
        words[at] = topic[rng.integers(0, len(topic), len(at))]
    forms = sentence_forms(rng, words, lengths, np.tile([True, False], base))
    turns = segments(forms, lengths)
    system = rng.integers(0, len(SYSTEM_PROMPTS), base)
    template = np.where(rng.random(base) < TEMPLATE_RATE, rng.integers(0, len(TEMPLATES), base), -1)
    # One entry per row: (index of its base row, its user forms, its assistant forms).
    rows: list[tuple[int, np.ndarray, np.ndarray]] = [(i, turns[2 * i], turns[2 * i + 1]) for i in range(base)]
    planted: list[tuple[str, int, float]] = []  # (kind, index of the original row, edit rate)
    for kind, count in copies.items():
        for original in rng.integers(0, base, count):
            _, user, assistant = rows[original]
            rate = 0.0
            if kind == "near_edit":
                rate = float(rng.uniform(0.05, 0.15))
                user, assistant = edit(rng, vocab, user, rate), edit(rng, vocab, assistant, rate)
            elif kind == "near_reorder":
                user, assistant = reorder(rng, user), reorder(rng, assistant)
            rows.append((int(original), user, assistant))
            planted.append((kind, int(original), rate))
    order = rng.permutation(len(rows))
    line_of = np.empty(len(rows), dtype=np.int64)
    line_of[order] = np.arange(len(rows)) + first_line
    # Render every turn of the block with one gather, then slice: per-row numpy calls would dominate.
    ordered_turns = [t for position in order for t in rows[position][1:]]
    flat = np.concatenate(ordered_turns)
    text = vocab.render(flat).decode()
    turn_forms = np.array([len(t) for t in ordered_turns])
    turn_bytes = np.add.reduceat(vocab.form_len[flat], np.concatenate([[0], np.cumsum(turn_forms)[:-1]]))
    bounds = np.concatenate([[0], np.cumsum(turn_bytes)]).tolist()
    lines = []
    for j, position in enumerate(order):
        source = rows[position][0]
        user_text = text[bounds[2 * j] : bounds[2 * j + 1]].rstrip()
        assistant_text = text[bounds[2 * j + 1] : bounds[2 * j + 2]].rstrip()
        if template[source] >= 0:
            user_text = TEMPLATES[template[source]] + "\n\n" + user_text
        label, system_prompt = str(labels[source]), SYSTEM_PROMPTS[system[source]]
        if position >= base and planted[position - base][0] == "exact":
            lines.append(orjson.dumps({"messages": [
                {"role": "system", "content": system_prompt},
                {"role": "user", "content": vary_exact(rng, user_text)},
                {"role": "assistant", "content": vary_exact(rng, assistant_text)},
            ], "category": label}))
        else:
            lines.append(orjson.dumps({"category": label, "messages": [
                {"content": system_prompt, "role": "system"},
                {"content": user_text, "role": "user"},
                {"content": assistant_text, "role": "assistant"},
            ]}))
    truth = [
        {"kind": kind, "original": int(line_of[original]), "copy": int(line_of[base + j]), "edit_rate": round(rate, 4)}
        for j, (kind, original, rate) in enumerate(planted)
    ]
    return lines, truth


def generate(rows: int, out: Path, truth_path: Path, seed: int = 0) -> dict[str, int]:
    rng = np.random.default_rng(seed)
    vocab = Vocabulary(rng)
    counts: dict[str, int] = {}
    written = 0
    with out.open("wb") as fh, truth_path.open("wb") as th:
        while written < rows:
            n = min(BLOCK, rows - written)
            lines, truth = generate_block(rng, vocab, n, written + 1)
            fh.write(b"\n".join(lines) + b"\n")
            for item in truth:
                th.write(orjson.dumps(item) + b"\n")
                counts[item["kind"]] = counts.get(item["kind"], 0) + 1
            written += n
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--truth", type=Path, default=None, help="ground-truth JSONL (default: <out>.truth.jsonl)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    truth = args.truth or args.out.with_name(args.out.name + ".truth.jsonl")
    started = time.perf_counter()
    counts = generate(args.rows, args.out, truth, args.seed)
    size = args.out.stat().st_size
    print(f"wrote {args.rows:,} rows ({size / 1e6:,.1f} MB) to {args.out} in {time.perf_counter() - started:.1f} s; "
          f"planted {counts} → {truth}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
