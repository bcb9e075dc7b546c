"""A read travels from its reader child to the run by pickle: it must arrive equal, and compact."""

from __future__ import annotations

import pickle
from decimal import Decimal

from helpers import write_submissions
from kaohe.submission import Entry, Submission, ingest_file


def test_a_read_arrives_equal_with_shared_keys(tmp_path, mini_catalog, registry, values):
    unit_ids = sorted(values)[:2]
    paths = write_submissions(mini_catalog, registry, {u: values[u] for u in unit_ids}, tmp_path)
    reads = [ingest_file(p, mini_catalog, registry) for p in paths]
    back = [pickle.loads(pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)) for r in reads]
    for r, b in zip(reads, back):
        assert b.submission is not None and b.submission.entries
        assert b.submission == r.submission  # every entry, value and problem
        assert list(b.submission.entries) == list(r.submission.entries)  # in the same order
        assert (b.unit_id, b.file, b.sha256, b.problems) == (r.unit_id, r.file, r.sha256, r.problems)
    # two units' entries are keyed by the same tuples and name the same strings, not copies
    a, b = (x.submission.entries for x in back)
    shared = set(a) & set(b)
    assert shared
    keys_b = {k: k for k in b}
    for k in shared:
        assert keys_b[k] is next(x for x in a if x == k)
        assert a[k].label is b[k].label and a[k].address is b[k].address


def test_entries_keyed_otherwise_are_kept_as_they_are():
    e = Entry("A1", "n", "数量", "自评表", "D5", "3", Decimal(3))
    odd = Submission("U1", "f.xlsx", "0" * 64, {("A1", "other"): e})
    back = pickle.loads(pickle.dumps(odd))
    assert back == odd and list(back.entries) == [("A1", "other")]


def test_a_reviewed_copy_pickles_like_the_original():
    e = Entry("A1", "n", "数量", "自评表", "D5", "3", Decimal(3))
    sub = Submission("U1", "f.xlsx", "0" * 64, {("A1", "n"): e}, {"填报人": "张三"})
    changed = sub.with_value("A1", "n", Decimal(4), "审核核减")
    back = pickle.loads(pickle.dumps(changed))
    assert back == changed and back.value("A1", "n") == Decimal(4) and sub.value("A1", "n") == Decimal(3)
