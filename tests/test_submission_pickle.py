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


def test_remembered_cells_and_entries_give_what_a_fresh_process_gives(tmp_path, mini_catalog, registry, values):
    """The reader shares one RawCell per token and parse_submission one Entry per accepted
    cell (issue 8): reading the same files again, or after forgetting, gives equal results."""
    from kaohe import parsing, preflight, reading, submission, xlsx
    from kaohe.reading import read_workbook

    def forget_all():
        for memo in (reading._CELLS, reading._FIXED, submission._ENTRIES, parsing._PARSED, preflight._PARTS):
            memo.clear()
        xlsx.forget()

    paths = write_submissions(mini_catalog, registry, values, tmp_path)
    first = [ingest_file(p, mini_catalog, registry) for p in paths]
    again = [ingest_file(p, mini_catalog, registry) for p in paths]  # everything remembered
    forget_all()
    cold = [ingest_file(p, mini_catalog, registry) for p in paths]
    for a, b, c in zip(first, again, cold):
        assert a.submission == b.submission == c.submission and a.problems == b.problems == c.problems
    # an entry is shared between two units only where their raw cells are equal
    forget_all()
    raws = [read_workbook(p, mini_catalog, registry).cells for p in paths[:2]]
    a, b = (r.submission.entries for r in again[:2])
    same = [k for k in a if k in b and a[k] is b[k]]
    assert same and all(raws[0][a[k].address] == raws[1][a[k].address] for k in same)


def test_an_entry_is_not_reused_for_another_cell_with_a_recycled_id(mini_catalog, registry, values, tmp_path):
    """The entry memo is keyed by ids and checks the objects themselves: a new cell that got a
    freed cell's id is parsed afresh."""
    from kaohe import submission
    from kaohe.parsing import RawCell

    (path,) = write_submissions(mini_catalog, registry, {u: values[u] for u in sorted(values)[:1]}, tmp_path)
    read = ingest_file(path, mini_catalog, registry)
    addr, cell = next((a, c) for a, c in reading_cells(path, mini_catalog, registry).items() if isinstance(c.value, int))
    other = RawCell(addr, cell.value + 1, cell.data_type, cell.number_format)
    submission._ENTRIES.clear()
    read.cells = {addr: cell}
    base = submission.parse_submission(read, mini_catalog, registry)
    (memo_key,) = [k for k in submission._ENTRIES if k[0] == id(cell)]
    cell_, spec, entry = submission._ENTRIES.pop(memo_key)
    submission._ENTRIES[(id(other), *memo_key[1:])] = (cell_, spec, entry)  # as if `other` had `cell`'s id
    read.cells = {addr: other}
    got = submission.parse_submission(read, mini_catalog, registry)
    key = next(k for k, e in got.entries.items() if e.address == addr)
    assert got.entries[key].value == base.entries[key].value + 1


def reading_cells(path, catalog, registry):
    from kaohe.reading import read_workbook

    return read_workbook(path, catalog, registry).cells
