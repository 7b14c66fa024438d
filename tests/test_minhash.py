"""ftdata.minhash: word/shingle hashing, numpy MinHash against datasketch and exact Jaccard, LSH, clusters."""

from __future__ import annotations

import itertools
import random
import re

import numpy as np
import pytest
from datasketch import MinHash

from ftdata import frame as F
from ftdata import minhash as M


def words_text(rng: random.Random, n: int) -> list[str]:
    vocabulary = [f"w{i}" for i in range(400)]
    return [rng.choice(vocabulary) for _ in range(n)]


def bigram_set(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i : i + 2]) for i in range(len(words) - 1)}


def true_jaccard(a: str, b: str) -> float:
    sa, sb = bigram_set(a), bigram_set(b)
    return len(sa & sb) / len(sa | sb)


def signature(texts: list[str], num_perm: int = 256, seed: int = 0) -> np.ndarray:
    hashes, doc, _ = M.shingle_hashes(texts, 2)
    return M.MinHasher(num_perm, seed).signatures(hashes, doc, len(texts))


def test_words_ignore_case_and_punctuation_and_keep_non_ascii() -> None:
    hashes, doc = M.word_hashes(["Hello, WORLD!  hello", "world café", ""])
    assert doc.tolist() == [0, 0, 0, 1, 1]
    assert hashes[0] == hashes[2] and hashes[1] == hashes[3]
    (cafe,) = M.word_hashes(["Café"])[0]
    assert hashes[4] == cafe and hashes[4] != M.word_hashes(["caf"])[0][0]


def test_a_text_shorter_than_a_shingle_is_one_shingle_of_its_words() -> None:
    hashes, doc, counts = M.shingle_hashes(["a b c d", "e", "", "f g"], 3)
    assert doc.tolist() == [0, 0, 1, 3] and counts.tolist() == [4, 1, 0, 2]
    # "f g" as a short text hashes like the shingle "f g" of a longer text with shingle size 2.
    assert M.shingle_hashes(["f g"], 3)[0][0] == M.shingle_hashes(["f g h"], 2)[0][0]


def test_hashes_do_not_depend_on_the_block_a_text_is_in() -> None:
    texts = ["the quick brown fox", "jumps over the lazy dog", "the quick brown fox"]
    together = signature(texts)
    apart = np.concatenate([signature([t]) for t in texts])
    assert np.array_equal(together, apart)
    assert np.array_equal(together[0], together[2])


@pytest.mark.parametrize("edit_rate", [0.05, 0.15, 0.4])
def test_numpy_estimate_matches_datasketch_and_the_true_jaccard(edit_rate: float) -> None:
    rng = random.Random(7)
    base = words_text(rng, 300)
    edited = [rng.choice(base) if rng.random() < edit_rate else w for w in base]
    a, b = " ".join(base), " ".join(edited)
    sig = signature([a, b], num_perm=256)
    ours = float(np.mean(sig[0] == sig[1]))
    sketches = []
    for text in (a, b):
        sketch = MinHash(num_perm=256, seed=1)
        sketch.update_batch([s.encode() for s in bigram_set(text)])
        sketches.append(sketch)
    theirs = sketches[0].jaccard(sketches[1])
    truth = true_jaccard(a, b)
    # Both estimate the same Jaccard; 256 permutations give a standard error of at most ~0.03.
    assert abs(ours - truth) < 0.1 and abs(theirs - truth) < 0.1 and abs(ours - theirs) < 0.12


def test_estimates_are_unbiased_over_many_pairs() -> None:
    rng = random.Random(3)
    errors = []
    for _ in range(60):
        base = words_text(rng, 120)
        other = [rng.choice(base) if rng.random() < 0.2 else w for w in base]
        sig = signature([" ".join(base), " ".join(other)], num_perm=128, seed=rng.randrange(1000))
        errors.append(float(np.mean(sig[0] == sig[1])) - true_jaccard(" ".join(base), " ".join(other)))
    assert abs(float(np.mean(errors))) < 0.02


def test_same_seed_same_signature_other_seed_other_permutations() -> None:
    texts = ["one two three four five six", "seven eight nine ten"]
    assert np.array_equal(signature(texts, seed=5), signature(texts, seed=5))
    assert not np.array_equal(signature(texts, seed=5), signature(texts, seed=6))


def test_text_without_words_gets_an_empty_signature() -> None:
    sig = signature(["...", "real words here"])
    assert (sig[0] == M.MinHasher.EMPTY).all() and not (sig[1] == M.MinHasher.EMPTY).all()


def test_lsh_params_catch_a_pair_at_the_threshold_with_the_most_rows_per_band() -> None:
    bands, rows = M.lsh_params(0.5, 128)
    assert (bands, rows) == (42, 3)
    assert M.candidate_probability(0.5, bands, rows) >= 0.98
    assert M.candidate_probability(0.5, 128 // (rows + 1), rows + 1) < 0.98
    assert M.expected_error(0.5, bands, rows) == pytest.approx(1 - M.candidate_probability(0.5, 42, 3), abs=1e-6)


def test_candidate_pairs_are_every_pair_sharing_a_band_key() -> None:
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 15, (60, 3)).astype(np.uint32)
    docs = np.arange(60) * 10
    pairs, oversized = M.candidate_pairs(keys, docs, max_bucket=1000)
    brute = {
        (int(docs[a]), int(docs[b]))
        for j in range(3)
        for a, b in itertools.combinations(range(60), 2)
        if keys[a, j] == keys[b, j]
    }
    assert {tuple(p) for p in pairs.tolist()} == brute and oversized == 0


def test_an_oversized_bucket_pairs_every_member_with_its_smallest_id_only() -> None:
    keys = np.zeros((6, 1), dtype=np.uint32)
    pairs, oversized = M.candidate_pairs(keys, np.array([50, 10, 40, 20, 30, 60]), max_bucket=3)
    assert oversized == 1
    assert pairs.tolist() == [[10, 20], [10, 30], [10, 40], [10, 50], [10, 60]]


def test_components_follow_chains_to_the_smallest_id() -> None:
    labels = M.components(8, np.array([[5, 7], [3, 5], [1, 2], [6, 3]]))
    assert labels.tolist() == [0, 1, 1, 3, 4, 3, 3, 3]


def test_exact_jaccard_of_sorted_sets() -> None:
    a = np.array([1, 2, 3, 4], dtype=np.uint64)
    b = np.array([3, 4, 5], dtype=np.uint64)
    assert M.jaccard(a, b) == pytest.approx(2 / 5)
    assert M.jaccard(a, a) == 1.0 and M.jaccard(a, np.array([9], dtype=np.uint64)) == 0.0


def test_record_text_selects_roles_and_skips_system_by_default() -> None:
    record = F.canonical_json({"messages": [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "Q"},
        {"role": "assistant", "content": [{"type": "text", "text": "A1"}]},
        {"role": "assistant", "content": None, "tool_calls": []},
    ]})
    assert M.record_text(record, "conversation") == "Q\nA1"
    assert M.record_text(record, "user") == "Q"
    assert M.record_text(record, "all").startswith("SYS\nQ")
    preference = F.canonical_json({"input": {"messages": [{"role": "user", "content": "Q"}]},
                                   "preferred_output": [{"role": "assistant", "content": "good"}],
                                   "non_preferred_output": [{"role": "assistant", "content": "bad"}]})
    assert M.record_text(preference, "conversation") == "Q\ngood"
