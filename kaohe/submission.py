"""Stage 2, parse: raw cells → typed entries, each keeping file, sheet and cell.

An entry exists for every input cell of the unit's template: the item's
fields plus three pseudo-fields, 不适用 (``__na``), 不适用理由
(``__na_reason``) and 佐证材料 (``__evidence``). An entry whose cell could not
be parsed has ``value=None`` and ``rejected=True``; its problem is in
``Submission.problems`` and validation does not report the cell again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from sys import intern

from kaohe import layout as L
from kaohe.layout import NA_KEY, field_hint
from kaohe.catalog import Catalog
from kaohe.errors import Problem
from kaohe.parsing import Parsed, RawCell, parse_cell
from kaohe.reading import ReadResult
from kaohe.registry import Registry



@dataclass(frozen=True, slots=True)
class Entry:
    item_id: str
    key: str
    label: str
    sheet: str
    address: str
    raw: str
    value: Decimal | str | None
    note: str = ""
    rejected: bool = False

    def __reduce__(self):
        # A year holds ~150 entries per unit, each unpickled from a reader child: slots, and the
        # template's strings (item, field, label, sheet, address) sent as one EntryHead, which a
        # reader child sends once and then as its number (isolation._Sender: SHARED), instead of
        # five strings to unpickle and intern in every entry; short texts shared across units.
        # Rebuilt through __init__, not the Python-level __setstate__ a frozen slots class would get.
        return (_entry, (_head_of(self), self.raw, self.value, self.note, self.rejected))


class EntryHead(tuple):
    """What an entry takes from the template: (item, field, label, sheet, address)."""

    __slots__ = ()

    def __reduce__(self):
        return (_entry_head, tuple(self))


def _entry_head(item_id, key, label, sheet, address) -> EntryHead:
    return EntryHead((intern(item_id), intern(key), intern(label), intern(sheet), intern(address)))


#: one head per (item, field, label, sheet, address) seen in this process: the same object for
#: every entry of that cell, so that a reader child sends it once
_HEADS: dict[tuple, EntryHead] = {}


def _head_of(e: "Entry") -> EntryHead:
    key = (e.item_id, e.key, e.label, e.sheet, e.address)
    head = _HEADS.get(key)
    if head is None:
        if len(_HEADS) >= 100_000:
            _HEADS.clear()
        head = _HEADS[key] = EntryHead(key)
    return head


def _entry(head: EntryHead, raw, value, note, rejected) -> Entry:
    if len(raw) <= 8:  # 是/否, grades, counts: the same few texts in every unit
        raw = intern(raw)
    return Entry(*head, raw, value, note, rejected)


#: the types a reader child sends once and then by number (``isolation.read_isolated(shared=)``)
SHARED = (Entry, EntryHead)


@dataclass
class Submission:
    unit_id: str
    file: str
    sha256: str
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)
    identity: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def __reduce__(self):
        # Sent from a reader child: the entries alone, keyed again on unpickling by their own
        # (item, field), one shared key tuple per field of the catalog instead of a fresh tuple
        # and two fresh strings per entry (~15 KB of every unit's ~50 KB read).
        entries = self.entries
        if all(k == (e.item_id, e.key) for k, e in entries.items()):
            entries = tuple(entries.values())
        return (_submission, (self.unit_id, self.file, self.sha256, entries, self.identity, self.problems))

    def value(self, item_id: str, key: str):
        e = self.entries.get((item_id, key))
        return None if e is None else e.value

    def is_na(self, item_id: str) -> bool:
        return self.value(item_id, NA_KEY) == "是"

    def with_value(self, item_id: str, key: str, value, note: str) -> "Submission":
        """A copy with one entry's value replaced (used by review; never mutates)."""
        entries = dict(self.entries)
        entries[(item_id, key)] = replace(entries[(item_id, key)], value=value, note=note, rejected=False)
        return Submission(self.unit_id, self.file, self.sha256, entries, dict(self.identity), list(self.problems))


#: one key tuple per (item, field) of the catalogs seen, shared by every unit's entries
_KEYS: dict[tuple[str, str], tuple[str, str]] = {}


def _submission(unit_id, file, sha256, entries, identity, problems) -> Submission:
    if isinstance(entries, tuple):
        if len(_KEYS) > 100_000:
            _KEYS.clear()
        keyed = {}
        for e in entries:
            k = (e.item_id, e.key)
            keyed[_KEYS.setdefault(k, k)] = e
        entries = keyed
    return Submission(unit_id, file, sha256, entries, identity, problems)


#: accepted entries by (raw cell, field, item, key) identity, with the cell and field themselves
_ENTRIES: dict[tuple, tuple[RawCell, object, Entry]] = {}


def parse_submission(read: ReadResult, catalog: Catalog, registry: Registry) -> Submission | None:
    """None when the file could not be tied to a unit (its problems stay on ``read``)."""
    if read.unit_id is None:
        return None
    unit = registry.get(read.unit_id)
    lay = L.layout(catalog, unit)
    sub = Submission(read.unit_id, read.file, read.sha256, identity=dict(read.identity), problems=list(read.problems))
    if len(_ENTRIES) > 20_000:
        _ENTRIES.clear()
    cells = read.cells.get
    entries = sub.entries
    for item_id, key, spec, addr, _pos in lay.body.inputs:
        cell = cells(addr)
        if cell is None:
            cell = RawCell(addr, None)
        # the reader gives one RawCell object for the same token in every file
        # (reading._CELLS): an accepted cell's entry is built once for all of them
        memo = (id(cell), id(spec), item_id, key)
        known = _ENTRIES.get(memo)
        if known is not None and known[0] is cell and known[1] is spec:
            entries[(item_id, key)] = known[2]
            continue
        label = spec.label
        result = parse_cell(cell, spec)
        if isinstance(result, Parsed):
            entry = Entry(item_id, key, label, L.FORM_SHEET, addr, cell.text, result.value, result.note)
            if len(entry.raw) <= 256:
                _ENTRIES[memo] = (cell, spec, entry)  # holding both: their ids stay theirs
        else:
            entry = Entry(item_id, key, label, L.FORM_SHEET, addr, cell.text, None, rejected=True)
            sub.problems.append(
                Problem(
                    result.code,
                    read.file,
                    f"{catalog.item(item_id).title}「{label}」{result.message}",
                    expected=field_hint(spec),
                    sheet=L.FORM_SHEET,
                    cell=addr,
                    item_id=item_id,
                    field=label,
                    value=cell.text[:100],
                )
            )
        entries[(item_id, key)] = entry
    return sub



def ingest_file(path, catalog: Catalog, registry: Registry) -> ReadResult:
    """Read one workbook and parse its cells in one step (what each isolated reader child runs):
    the result carries its ``submission`` (None when the file could not be tied to a unit)."""
    from kaohe.reading import read_workbook

    res = read_workbook(path, catalog, registry)
    res.submission = parse_submission(res, catalog, registry)
    # The raw cells live on in the submission's entries (address, text, value);
    # dropping them here makes the result a third smaller and 4x cheaper to
    # unpickle in the parent (1.2 -> 0.3 ms per workbook).
    res.cells = {}
    return res
