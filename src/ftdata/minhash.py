"""MinHash over word shingles, vectorised with numpy, plus LSH banding and exact Jaccard.

datasketch's `MinHash.update()` hashes and permutes one shingle at a time in Python (~300 docs/s here).
This module does the same maths on whole blocks of documents at once:

- words: the block's text is lower-cased and encoded once; a word is a run of ASCII letters/digits/`_` or
  non-ASCII bytes, hashed from 8-byte chunks read straight out of the buffer (no Python call per word);
- shingles: k consecutive words of one document, hashed to 64 bits; the high 24 bits name a bucket that
  template detection counts, the low 32 bits feed the permutations;
- signatures: `num_perm` permutations `(a * x + b) mod 2**32` with odd `a` (bijections of 32-bit space,
  SIMD-friendly in numpy, where 64-bit multiply-mod-prime is ~3x slower) and a min per document;
- LSH: `bands` bands of `rows` values, each hashed to a 32-bit bucket key; documents sharing a key in any
  band become candidate pairs, and candidates are verified by exact Jaccard of their shingle sets.

Everything is a pure function of the text, the parameters and the seed, so results do not depend on how
documents are split into blocks or worker processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import orjson

MASK64 = (1 << 64) - 1
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [MASK64], dtype=np.uint64)
_SHINGLE_MUL = np.uint64(0x9E3779B97F4A7C15)
_C1, _C2, _S33 = np.uint64(0xFF51AFD7ED558CCD), np.uint64(0xC4CEB9FE1A85EC53), np.uint64(33)
BUCKET_BITS = 24

# bytes.translate table: word bytes map to themselves, every other byte to 0. Non-ASCII (UTF-8) bytes stay
# inside words, so accented and non-Latin words are words too.
_WORD_BYTES = bytes(c if (c >= 128 or chr(c) in "abcdefghijklmnopqrstuvwxyz0123456789_") else 0 for c in range(256))

ROLES = {
    "conversation": ("user", "assistant", "tool"),
    "user": ("user",),
    "assistant": ("assistant",),
    "all": ("system", "developer", "user", "assistant", "tool"),
}


def fmix64(h: np.ndarray) -> np.ndarray:
    """murmur3's 64-bit finaliser, in place: spreads every input bit over the whole word."""
    h ^= h >> _S33
    h *= _C1
    h ^= h >> _S33
    h *= _C2
    h ^= h >> _S33
    return h


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "\n".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def record_text(record_json: str, fields: str) -> str:
    """The text near-dedup compares: the contents of the messages whose role `fields` selects."""
    obj = orjson.loads(record_json)
    roles = ROLES[fields]
    if "messages" in obj:
        messages = obj["messages"]
    else:  # preference rows: the prompt and the preferred answer
        messages = [*(obj.get("input") or {}).get("messages", []), *(obj.get("preferred_output") or [])]
    texts = (_content_text(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") in roles)
    return "\n".join(t for t in texts if t)


def word_hashes(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hash of every word of every text, and the index of the text each word belongs to.

    A word's bytes are read as little-endian 8-byte chunks straight out of the block's buffer (a strided
    uint64 view at byte granularity) and masked to the word's length; longer words chain further chunks.
    Word bytes are never 0 after translation, so a chunk determines its bytes; fmix64 finishes the hash.
    """
    encoded = [t.lower().encode() for t in texts]
    # Non-word bytes become 0 (so do the separators): one C-level pass instead of a numpy table lookup.
    raw = b"\x00".join(encoded).translate(_WORD_BYTES) + bytes(8)
    n = len(raw) - 8
    is_word = np.frombuffer(raw, dtype=np.bool_, count=n)
    edges = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1
    if n and is_word[0]:
        edges = np.concatenate([[0], edges])
    if len(edges) % 2:
        edges = np.append(edges, n)
    starts, lengths = edges[0::2], edges[1::2] - edges[0::2]
    chunks = np.ndarray(shape=(n + 1,), dtype="<u8", buffer=raw, strides=(1,))
    hashes = chunks[starts] & _LOW_BYTES[np.minimum(lengths, 8)]
    longer, offset = np.flatnonzero(lengths > 8), 8
    while len(longer):
        rest = lengths[longer] - offset
        tail = chunks[starts[longer] + offset] & _LOW_BYTES[np.minimum(rest, 8)]
        hashes[longer] = hashes[longer] * _SHINGLE_MUL + tail
        longer, offset = longer[rest > 8], offset + 8
    separators = np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)) + 1) - 1
    return fmix64(hashes), np.searchsorted(separators, starts)


def shingle_hashes(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of the `size`-word shingles of each text (in text order), their text index, and each text's
    word count. A text with fewer than `size` words (but at least one) gets one shingle of all its words.
    """
    words, doc = word_hashes(texts)
    counts = np.bincount(doc, minlength=len(texts))
    m = len(words) - size + 1
    if m > 0:
        combined = words[:m].copy()
        for j in range(1, size):
            combined *= _SHINGLE_MUL
            combined += words[j : j + m]
        within = doc[:m] == doc[size - 1 :]  # all `size` words in one text
        hashes, shingle_doc = combined[within], doc[:m][within]
    else:
        hashes, shingle_doc = np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.int64)
    short = np.flatnonzero((counts > 0) & (counts < size))
    if len(short):  # rare: one shingle of all the words, merged back in text order
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        extra = np.empty(len(short), dtype=np.uint64)
        for i, d in enumerate(short.tolist()):
            h = 0  # Python ints: numpy scalars would warn on the intended wrap-around
            for j, w in enumerate(words[first[d] : first[d] + counts[d]].tolist()):
                h = (h * int(_SHINGLE_MUL) + w) & MASK64 if j else w
            extra[i] = h
        order = np.argsort(np.concatenate([shingle_doc, short]), kind="stable")
        hashes, shingle_doc = np.concatenate([hashes, extra])[order], np.concatenate([shingle_doc, short])[order]
    return fmix64(hashes), shingle_doc, counts


def buckets(hashes: np.ndarray) -> np.ndarray:
    """Template-detection bucket of each shingle hash (its high BUCKET_BITS bits)."""
    return (hashes >> np.uint64(64 - BUCKET_BITS)).astype(np.int64)


def unique_per_doc(hashes: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (doc, hash) once, sorted by doc then hash; hashes keep their high 56 bits (doc must be < 256).

    One sort of `doc << 56 | hash >> 8` is several times faster than a two-key lexsort; dropping 8 bits
    leaves collisions between different shingles at 2**-56 per pair, far below anything Jaccard notices.
    """
    keys = np.sort((doc.astype(np.uint64) << np.uint64(56)) | (hashes >> np.uint64(8)))
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    keys = keys[first]
    return keys & np.uint64((1 << 56) - 1), (keys >> np.uint64(56)).astype(np.int64)


class MinHasher:
    """`num_perm` seeded permutations of 32-bit shingle values and the LSH band keys of signatures."""

    EMPTY = np.uint32(0xFFFFFFFF)

    def __init__(self, num_perm: int, seed: int) -> None:
        rng = np.random.default_rng([seed, num_perm])
        self.num_perm = num_perm
        self.a = (rng.integers(0, 1 << 32, num_perm, dtype=np.uint64) | np.uint64(1)).astype(np.uint32)
        self.b = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
        self.band_salt = rng.integers(0, 1 << 63, num_perm, dtype=np.uint64)

    def signatures(self, hashes: np.ndarray, doc: np.ndarray, n_docs: int, block: int = 4096) -> np.ndarray:
        """(n_docs, num_perm) uint32 min-hashes; a document without shingles gets EMPTY everywhere.

        `doc` must be sorted. Work is cut into blocks of about `block` shingles so the (num_perm, block)
        intermediate stays a few MB however many documents come in.
        """
        sig = np.full((n_docs, self.num_perm), self.EMPTY, dtype=np.uint32)
        if len(hashes) == 0:
            return sig
        values = (hashes & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        doc_start = np.searchsorted(doc, np.arange(n_docs + 1))
        a, b = self.a[:, None], self.b[:, None]
        first = 0
        while first < n_docs:
            last = int(np.searchsorted(doc_start, doc_start[first] + block, side="right")) - 1
            last = min(max(last, first + 1), n_docs)
            lo, hi = doc_start[first], doc_start[last]
            present = np.flatnonzero(doc_start[first:last] < doc_start[first + 1 : last + 1]) + first
            if hi > lo:
                permuted = a * values[lo:hi][None, :]
                permuted += b
                mins = np.minimum.reduceat(permuted, doc_start[present] - lo, axis=1)
                sig[present] = mins.T
            first = last
        return sig

    def band_keys(self, sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
        """(n_docs, bands) uint32 bucket keys: band j hashes signature values j*rows .. (j+1)*rows - 1."""
        grouped = sig[:, : bands * rows].reshape(len(sig), bands, rows).astype(np.uint64)
        h = np.broadcast_to(self.band_salt[:bands], (len(sig), bands)).copy()
        for r in range(rows):
            h = fmix64(h * _SHINGLE_MUL + grouped[:, :, r])
        return (h >> np.uint64(32)).astype(np.uint32)


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Chance that a pair with this Jaccard similarity shares at least one band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def lsh_params(threshold: float, num_perm: int, recall: float = 0.98) -> tuple[int, int]:
    """(bands, rows) for exact verification: the most rows per band (fewest chance candidates) that still
    make a pair right at `threshold` a candidate with probability >= `recall`."""
    best = (num_perm, 1)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        if candidate_probability(threshold, bands, rows) >= recall:
            best = (bands, rows)
    return best


def candidate_pairs(keys: np.ndarray, docs: np.ndarray, max_bucket: int) -> tuple[np.ndarray, int]:
    """Unique (i, j), i < j, of documents (ids from `docs`) sharing a key in some band.

    A bucket holding more than `max_bucket` documents (a very common text) pairs each member with its
    smallest document id only, so cost stays linear; returns the pairs and how many buckets that hit.
    """
    found: list[np.ndarray] = []
    oversized = 0
    for j in range(keys.shape[1]):
        column = keys[:, j]
        order = np.argsort(column)
        ordered = column[order]
        same = ordered[1:] == ordered[:-1]
        if not same.any():
            continue
        run_start = np.flatnonzero(np.concatenate([[True], ~same]))
        run_len = np.diff(np.append(run_start, len(column)))
        shared = run_len >= 2
        run_start, run_len = run_start[shared], run_len[shared]
        members = docs[order]
        small = run_len <= max_bucket
        # Every pair inside a small run: member at position t pairs with the run's later members.
        position = _expand(run_start[small], run_len[small])
        later = np.repeat(run_start[small] + run_len[small], run_len[small]) - position - 1
        left = np.repeat(position, later)
        right = left + 1 + (np.arange(int(later.sum())) - np.repeat(np.cumsum(later) - later, later))
        found.append(np.stack([members[left], members[right]], axis=1))
        big_start, big_len = run_start[~small], run_len[~small]
        oversized += len(big_start)
        if len(big_start):
            position = _expand(big_start, big_len)
            anchor = np.repeat(np.minimum.reduceat(members[position], np.cumsum(big_len) - big_len), big_len)
            star = np.stack([anchor, members[position]], axis=1)
            found.append(star[star[:, 0] != star[:, 1]])
    if not found:
        return np.empty((0, 2), dtype=np.int64), oversized
    pairs = np.concatenate(found).astype(np.int64)
    packed = np.unique(np.minimum(pairs[:, 0], pairs[:, 1]) << 32 | np.maximum(pairs[:, 0], pairs[:, 1]))
    return np.stack([packed >> 32, packed & 0xFFFFFFFF], axis=1), oversized


def _expand(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Positions start .. start+length-1 of every run, concatenated."""
    total = int(lengths.sum())
    return np.repeat(starts, lengths) + np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted arrays of unique values."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    if len(a) > len(b):
        a, b = b, a
    at = np.searchsorted(b, a)
    inter = int(np.count_nonzero(b[np.minimum(at, len(b) - 1)] == a)) if len(b) else 0
    return inter / (len(a) + len(b) - inter)


def components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Connected components of `pairs` over nodes 0..n-1: each node's label is its component's smallest id.

    Vectorised union-find: hook every pair's larger root onto the smaller one, compress paths fully, and
    repeat until both ends of every pair share a root.
    """
    parent = np.arange(n, dtype=np.int64)
    if len(pairs) == 0:
        return parent
    left, right = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    while True:
        root_left, root_right = parent[left], parent[right]
        if np.array_equal(root_left, root_right):
            return parent
        low = np.minimum(root_left, root_right)
        np.minimum.at(parent, root_left, low)
        np.minimum.at(parent, root_right, low)
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def expected_error(threshold: float, bands: int, rows: int) -> float:
    """Chance a pair exactly at the threshold is missed (for the manifest's stats)."""
    return round(1.0 - candidate_probability(threshold, bands, rows), 6)


# --- Work done in worker processes (picklable arguments, numpy/orjson only: workers start fast) ---

OK, SHORT, TEMPLATE_ONLY = 0, 1, 2
MIN_RESIDUAL_SHINGLES = 5
TEXT_BLOCK = 256  # texts hashed together: big enough to amortise numpy calls, small enough for cache


@dataclass(frozen=True)
class ShingleSpec:
    fields: str
    size: int
    min_words: int


_template_cache: dict[bytes, np.ndarray] = {}


def _template_mask(template: np.ndarray) -> np.ndarray:
    key = hashlib.blake2b(template.tobytes(), digest_size=16).digest()
    if key not in _template_cache:
        _template_cache.clear()
        mask = np.zeros(1 << BUCKET_BITS, dtype=bool)
        mask[template] = True
        _template_cache[key] = mask
    return _template_cache[key]


def _blocks(
    records: Sequence[str], spec: ShingleSpec, template: np.ndarray | None
) -> Iterator[tuple[int, int, np.ndarray, np.ndarray, np.ndarray]]:
    """Per block of texts: (offset, n, residual shingle hashes, their doc index, status per text).

    A text is SHORT under `min_words` words, TEMPLATE_ONLY when the template filter removed some of its
    shingles and fewer than MIN_RESIDUAL_SHINGLES remain (a short text that lost nothing is compared).
    """
    mask = _template_mask(template) if template is not None and len(template) else None
    for offset in range(0, len(records), TEXT_BLOCK):
        texts = [record_text(r, spec.fields) for r in records[offset : offset + TEXT_BLOCK]]
        n = len(texts)
        hashes, doc, counts = shingle_hashes(texts, spec.size)
        status = np.where(counts < spec.min_words, SHORT, OK).astype(np.int8)
        keep = status[doc] == OK
        if mask is not None:
            keep &= ~mask[hashes >> np.uint64(64 - BUCKET_BITS)]
            # Shingles per text before and after (with repeats: enough to tell "too little left").
            total = np.where(counts >= spec.size, counts - spec.size + 1, np.minimum(counts, 1))
            left = np.bincount(doc[keep], minlength=n)
            thin = (status == OK) & (left < total) & (left < MIN_RESIDUAL_SHINGLES)
            if thin.any():
                status[thin] = TEMPLATE_ONLY
                keep &= ~thin[doc]
        yield offset, n, hashes[keep], doc[keep], status


def sample_buckets(records: Sequence[str], spec: ShingleSpec) -> tuple[np.ndarray, np.ndarray]:
    """Template buckets of the records' shingles and in how many records each occurs (document frequency)."""
    found = []
    for _, _, hashes, doc, _ in _blocks(records, spec, None):
        per_doc = np.sort(doc << BUCKET_BITS | buckets(hashes))
        first = np.ones(len(per_doc), dtype=bool)
        first[1:] = per_doc[1:] != per_doc[:-1]
        found.append(per_doc[first] & ((1 << BUCKET_BITS) - 1))
    values = np.sort(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)
    starts = np.flatnonzero(np.concatenate([[True], values[1:] != values[:-1]])) if len(values) else values
    return values[starts], np.diff(np.append(starts, len(values)))


def signature_keys(
    records: Sequence[str], spec: ShingleSpec, template: np.ndarray, num_perm: int, seed: int, bands: int, rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """LSH band keys (n, bands) of each record and its status (OK / SHORT / TEMPLATE_ONLY)."""
    hasher = MinHasher(num_perm, seed)
    keys = np.zeros((len(records), bands), dtype=np.uint32)
    status = np.full(len(records), OK, dtype=np.int8)
    for offset, n, hashes, doc, block_status in _blocks(records, spec, template):
        status[offset : offset + n] = block_status
        keys[offset : offset + n] = hasher.band_keys(hasher.signatures(hashes, doc, n), bands, rows)
    return keys, status


def shingle_sets(records: Sequence[str], spec: ShingleSpec, template: np.ndarray) -> list[np.ndarray]:
    """Sorted unique residual shingle hashes of each record: the sets exact Jaccard compares."""
    sets: list[np.ndarray] = []
    for _, n, hashes, doc, _ in _blocks(records, spec, template):
        hashes, doc = unique_per_doc(hashes, doc)
        bounds = np.searchsorted(doc, np.arange(n + 1))
        sets += [hashes[bounds[i] : bounds[i + 1]] for i in range(n)]
    return sets


def pair_similarities(records: Sequence[str], spec: ShingleSpec, template: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard of each (i, j) in `pairs`, indices into `records`."""
    sets = shingle_sets(records, spec, template)
    return np.array([jaccard(sets[i], sets[j]) for i, j in pairs.tolist()], dtype=np.float64)
