"""Write sample_data/raw.csv and sample_data/chat.jsonl, planting the problems README.md lists.

The knowledge comes from hand-written sources (source_qa.txt, chats.py); this script adds customer-voice
variation and the planted problems, then prints what it planted and where. Deterministic: running it
again rewrites byte-identical files.

    python sample_data/generate.py
"""

from __future__ import annotations

import csv
import io
import random
import re
import sys
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from chats import chat_lines  # noqa: E402  (a sibling module of this script, not a package)

SEED = 20251122
GREETINGS = ["Hi, ", "Hello! ", "Hi there, ", "Quick question: ", "Hey team, ", "Good morning! "]
SYNONYMS = {
    "can": "may", "click": "press", "choose": "select", "pick": "select", "open": "visit", "shows": "displays",
    "usually": "typically", "need": "require", "get": "receive", "change": "update", "every": "each",
    "only": "just", "before": "prior to", "keep": "retain", "start": "begin", "stop": "end", "remove": "delete",
    "delete": "remove", "client": "customer", "clients": "customers", "right": "straight", "also": "additionally",
    "automatically": "by itself", "straight": "right", "want": "wish", "use": "utilise", "add": "enter",
}
FILLERS = ["just", "simply", "then", "really", "also"]
DELETABLE = {"then", "also", "just", "all", "so", "usually", "automatically", "still", "already", "always"}
EMPTY_ANSWERS = [
    ("billing", "Do you offer a discount for paying three years in advance?", ""),
    ("invoicing", "Can I print invoices in landscape orientation?", ""),
    ("integrations", "Is there a FreeAgent integration?", ""),
    ("billing", "What's the cheapest plan that includes recurring invoices?", ""),
    ("account_security", "Can I sign in with my Apple ID?", ""),
    ("troubleshooting", "Why are my reminder emails going out in English?", "  \n "),
]


@dataclass(frozen=True)
class Row:
    category: str
    question: str
    answer: str
    planted: str = ""  # what problem this row carries, for the summary


def parse_source(text: str) -> list[Row]:
    rows: list[Row] = []
    category = ""
    question: str | None = None
    answer: list[str] = []

    def flush() -> None:
        if question is not None:
            rows.append(Row(category, question, "\n".join(answer)))

    for line in text.splitlines():
        if line.startswith("# category: "):
            flush()
            question, answer, category = None, [], line.removeprefix("# category: ")
        elif line.startswith("Q: "):
            flush()
            question, answer = line[3:], []
        elif line.startswith("A: "):
            answer = [line[3:]]
        elif line.startswith("   ") and answer:
            answer.append(line.strip())
    flush()
    return rows


def customer_voice(rng: random.Random, question: str) -> str:
    """Real tickets open with greetings and skip capitals; about a quarter of the questions do here."""
    roll = rng.random()
    if roll < 0.15 and not question.startswith(("I ", "I'")):
        return rng.choice(GREETINGS) + question[0].lower() + question[1:]
    if roll < 0.25:
        return question.lower().rstrip("?")
    return question


def huge_log_row(rng: random.Random) -> Row:
    """An answer with a pasted webhook log: far over the 65,536-token example limit of OpenAI fine-tuning."""
    events = ["invoice.paid", "invoice.sent", "invoice.overdue", "payment.recorded", "client.updated", "estimate.accepted"]
    lines = []
    for i in range(900):
        second = 8 * 3600 + 14 * 60 + i * 7
        stamp = f"2025-03-{3 + second // 86400:02d}T{second % 86400 // 3600:02d}:{second % 3600 // 60:02d}:{second % 60:02d}.{rng.randrange(1000):03d}Z"
        lines.append(
            f"{stamp} webhook_delivery id=whd_{rng.getrandbits(48):012x} event={rng.choice(events)} "
            f"endpoint=https://hooks.northwind-design.example/ledgerly attempt={1 + i % 8} status=401 "
            f"latency_ms={rng.randrange(40, 900)} signature=v1,{rng.getrandbits(128):032x}"
        )
    answer = (
        "Of course. Here is the complete delivery log for your endpoint from our side:\n\n"
        + "\n".join(lines)
        + "\n\nEvery attempt since 08:14 UTC on Monday was answered with HTTP 401, which means your endpoint "
        "rejected our signature after the signing secret was rotated. Update the secret in your receiver, then use "
        '"Resend failed deliveries" in Settings → Developers → Webhooks.'
    )
    question = "Deliveries to our webhook endpoint have failed since Monday. Can you send me the full delivery log?"
    return Row("troubleshooting", question, answer, "over_token_limit")


def exact_copy(rng: random.Random, row: Row, variant: str) -> Row:
    if variant == "verbatim":
        return replace(row, planted="exact_duplicate")
    if variant == "case":
        return replace(row, question=row.question.lower(), planted="exact_duplicate_case")
    words = row.answer.split(" ")
    for i in sorted(rng.sample(range(1, len(words)), min(3, len(words) - 1))):
        words[i] = " " + words[i]
    return replace(row, question=row.question + " ", answer=" ".join(words) + "\n", planted="exact_duplicate_whitespace")


def edited_copy(rng: random.Random, row: Row) -> tuple[Row, float]:
    """A copy with 6–13% of its words substituted, deleted or added; returns the fraction edited."""
    words = row.answer.split(" ")
    total = len(row.question.split()) + len(words)
    edits = max(1, round(total * rng.uniform(0.06, 0.13)))
    positions = set(rng.sample(range(len(words)), min(edits, len(words))))
    out: list[str] = []
    for i, word in enumerate(words):
        if i not in positions:
            out.append(word)
            continue
        core = word.strip(".,;:!?()\"")
        synonym = SYNONYMS.get(core.lower())
        if synonym:
            out.append(word.replace(core, synonym.capitalize() if core[:1].isupper() else synonym, 1))
        elif core.lower() in DELETABLE and word == core:
            continue
        else:
            out.extend([rng.choice(FILLERS), word])
    return replace(row, answer=" ".join(out), planted="near_duplicate_edited"), len(positions) / total


def reordered_copy(rng: random.Random, row: Row) -> Row:
    sentences = re.split(r"(?<=[.!?])\s+", row.answer)
    order = list(range(len(sentences)))
    while order == sorted(order):
        rng.shuffle(order)
    return replace(row, answer=" ".join(sentences[i] for i in order), planted="near_duplicate_reordered")


def stray_whitespace(rng: random.Random, row: Row) -> Row:
    pad = rng.choice(["  ", " ", "\t", "\n", "   "])
    where = rng.randrange(4)
    question, answer = row.question, row.answer
    if where == 0:
        question = pad + question
    elif where == 1:
        question = question + pad
    elif where == 2:
        answer = pad + answer
    else:
        answer = answer + pad
    return replace(row, question=question, answer=answer, planted="stray_whitespace")


def build_rows(rng: random.Random) -> tuple[list[Row], list[float]]:
    base = [replace(r, question=customer_voice(rng, r.question)) for r in parse_source((HERE / "source_qa.txt").read_text("utf-8"))]
    picks = rng.sample(range(len(base)), 65)
    three_sentences = [i for i in picks if len(re.split(r"(?<=[.!?])\s+", base[i].answer)) >= 3]
    reorder = three_sentences[:10]
    rest = [i for i in picks if i not in reorder]
    exact, edited, padded = rest[:15], rest[15:25], rest[25:45]
    copies: list[Row] = []
    for n, i in enumerate(exact):
        copies.append(exact_copy(rng, base[i], ("verbatim", "case", "whitespace")[n % 3]))
    fractions = []
    for i in edited:
        copy, fraction = edited_copy(rng, base[i])
        copies.append(copy)
        fractions.append(fraction)
    copies += [reordered_copy(rng, base[i]) for i in reorder]
    for i in padded:
        base[i] = stray_whitespace(rng, base[i])
    extra = [Row(c, q, a, "empty_answer") for c, q, a in EMPTY_ANSWERS] + [huge_log_row(rng)]
    rows = base + copies + extra
    rng.shuffle(rows)
    return rows, fractions


def csv_text(rows: list[Row]) -> tuple[str, list[int]]:
    """The CSV (CRLF line ends, as spreadsheet exports write them) and each record's first line number."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(["question", "answer", "category"])
    starts = []
    for row in rows:
        starts.append(buffer.getvalue().count("\n") + 1)
        writer.writerow([row.question, row.answer, row.category])
    return buffer.getvalue(), starts


def main() -> None:
    rng = random.Random(SEED)
    rows, fractions = build_rows(rng)
    text, starts = csv_text(rows)
    (HERE / "raw.csv").write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    system = (HERE / "system_prompt.txt").read_text("utf-8").strip()
    lines, broken = chat_lines(system)
    (HERE / "chat.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    print(f"raw.csv: {len(rows)} rows, {(HERE / 'raw.csv').stat().st_size:,} bytes")
    for category, count in Counter(r.category for r in rows).most_common():
        print(f"  {category:17} {count:4} ({count / len(rows):.1%})")
    for planted, count in sorted(Counter(r.planted for r in rows if r.planted).items()):
        where = [start for start, r in zip(starts, rows) if r.planted == planted]
        shown = ", ".join(map(str, where[:20])) + (" …" if len(where) > 20 else "")
        print(f"  {planted:27} {count:3}  (records starting at lines {shown})")
    print(f"  edited near-duplicates change {min(fractions):.0%}–{max(fractions):.0%} of their words")
    print(f"chat.jsonl: {len(lines)} lines")
    for number, problem in sorted(broken.items()):
        print(f"  line {number}: {problem}")


if __name__ == "__main__":
    main()
