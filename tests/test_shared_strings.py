"""kaohe.xlsx.SharedStrings: a plain part read from its bytes gives what the parsed tree gives.

The reference is the whole part parsed with ElementTree and each ``<si>`` item's text taken by
``xlsx._text`` (what kaohe did before issue 8's shared-strings path): for every part, the same
texts, or the same refusal (code, line and column).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaohe import xlsx as X

MAIN = b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
DECL = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


def reference(data: bytes):
    try:
        root = X.parse(data)
    except X.XmlRefused as exc:
        return ("refused", exc.code, exc.line, exc.column)
    return [X._text(el) for el in root if X.local(el.tag) == "si"]


def fast(data: bytes):
    try:
        sst = X.SharedStrings(data)
    except X.XmlRefused as exc:
        return ("refused", exc.code, exc.line, exc.column)
    n = len(sst)
    got = sst.get(set(range(n + 2)))  # indices past the end are left out
    assert set(got) == set(range(n))
    return [got[i] for i in range(n)]


def sst(*items: bytes, root: bytes = b"<sst " + MAIN + b' count="9" uniqueCount="9">', decl: bytes = DECL) -> bytes:
    return decl + root + b"".join(items) + b"</sst>"


RUN = b'<r><rPr><sz val="11"/><rFont val="DejaVu Sans"/><family val="2"/></rPr><t xml:space="preserve">%s</t></r>'
ITEMS = [
    b"<si><t>\xe6\x98\xaf</t></si>",
    b'<si><t xml:space="preserve"> \xe5\x90\xa6 </t></si>',
    b"<si><t>a &amp; b &lt;c&gt; &#x4E2D;&#25991; &quot;q&quot; &apos;</t></si>",
    b"<si><t/></si>",
    b"<si><t></t></si>",
    b"<si>" + RUN % "示范市".encode() + RUN % b"2025" + RUN % "年度".encode() + b"</si>",
    b'<si><r><rPr><b val="true"/><color rgb="FF000000"/></rPr><t>x</t></r><r><t>y</t></r></si>',
    b'<si><t>\xe4\xb8\x9c</t><rPh sb="0" eb="1"><t>\xe3\x81\xa8</t></rPh><phoneticPr fontId="1"/></si>',
    b"<si><r><rPr><t>inside props</t></rPr><t>run</t></r></si>",
    b"<si><r><rPr><t/></rPr><t>run</t></r></si>",
    b"<si><r><rPr><sz val='11'/></rPr><t>single quotes</t></r></si>",
    b"<si><r><t>a</t><t>b</t></r></si>",
    b"<si><u><t>not a run</t></u><t>kept</t></si>",
    b"<si></si>",
    b"<si><t>" + "长文本".encode() * 900 + b"</t></si>",
    b"<si>" + (RUN % "长".encode()) * 400 + b"</si>",
]


@pytest.mark.parametrize("item", ITEMS, ids=range(len(ITEMS)))
def test_each_kind_of_item(item):
    data = sst(ITEMS[0], item, ITEMS[1])
    assert X._plain_items(data) is not None  # read from its bytes
    assert fast(data) == reference(data)
    X._ITEM_TEXTS.clear()
    assert fast(data) == fast(data) == reference(data)  # a text remembered is the text computed


PARTS = {
    "no items": sst(),
    "empty root": DECL + b"<sst " + MAIN + b"/>",
    "no declaration": sst(*ITEMS[:3], decl=b""),
    "BOM and CR LF after the declaration": b"\xef\xbb\xbf" + DECL.rstrip() + b"\r\n" + sst(*ITEMS[:3], decl=b""),
    "CR LF in a text": sst(b"<si><t>a\r\nb</t></si>", b"<si><t>c\rd</t></si>"),
    "character reference CR": sst(b"<si><t>a&#13;b</t></si>"),
    "CDATA": sst(b"<si><t><![CDATA[<b>&amp;</b>]]></t></si>", ITEMS[0]),
    "comment between items": sst(ITEMS[0], b"<!-- x -->", ITEMS[1]),
    "processing instruction": sst(ITEMS[0], b"<?pi x?>", ITEMS[1]),
    "whitespace between items": sst(ITEMS[0], b"\n  ", ITEMS[1]),
    "extLst after the items": sst(ITEMS[0], b"<extLst><ext uri='x'/></extLst>"),
    "prefixed items": sst(b'<x:si><x:t>p</x:t></x:si>', ITEMS[0], root=b'<sst ' + MAIN + b' xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'),
    "prefixed t in an item": sst(b'<si><x:t>p</x:t></si>', root=b'<sst ' + MAIN + b' xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'),
    "prefixed root": DECL + b'<x:sst xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><x:si><x:t>p</x:t></x:si></x:sst>',
    "another default namespace": sst(ITEMS[0], root=b'<sst xmlns="urn:other">'),
    "prefixed attribute bound on the root": sst(b'<si><t a:b="1">v</t></si>', root=b'<sst ' + MAIN + b' xmlns:a="urn:a">'),
    "unbound prefix": sst(b'<si><t a:b="1">v</t></si>'),
    "nested si": sst(b"<si><si><t>a</t></si></si>", ITEMS[0]),
    "si with an attribute": sst(b'<si foo="1"><t>a</t></si>'),
    "empty si element": sst(b"<si/>", ITEMS[0]),
    "latin-1 declared": b'<?xml version="1.0" encoding="ISO-8859-1"?>' + sst(b"<si><t>caf\xe9</t></si>", decl=b""),
    "UTF-16": ("\ufeff" + sst(ITEMS[0], decl=b"").decode("utf-8")).encode("utf-16-le"),
    "DOCTYPE": b'<?xml version="1.0"?><!DOCTYPE sst [<!ENTITY e "x">]>' + sst(b"<si><t>&e;</t></si>", decl=b""),
    "unknown entity": sst(b"<si><t>&nbsp;</t></si>"),
    "not closed": sst(ITEMS[0], b"<si><t>a</si>"),
    "control character": sst(b"<si><t>a\x01b</t></si>"),
    "invalid UTF-8": sst(b"<si><t>a\xff\xfeb</t></si>"),
    "nothing after the items": (DECL + b"<sst " + MAIN + b">" + ITEMS[0]),
    "text after the root": sst(ITEMS[0]) + b"tail",
}


@pytest.mark.parametrize("name", sorted(PARTS))
def test_each_kind_of_part(name):
    assert fast(PARTS[name]) == reference(PARTS[name])


_TOKENS = [b"<si>", b"</si>", b"<t>", b"</t>", b"<r>", b"</r>", b"<rPr>", b"</rPr>", b"<b/>", b'<sz val="1"/>', b"&amp;", b"&#20013;",
           b"<!--c-->", b"\r\n", b" ", b'<t xml:space="preserve">', b"<rPh>", b"</rPh>", b"a", "是".encode(), b"<", b">", b"&", b"/", b'"']
_BASE = sst(*ITEMS[:8], ITEMS[8], ITEMS[10])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_BASE)), st.integers(0, 12), st.sampled_from(_TOKENS)), min_size=1, max_size=4))
def test_mutated_parts(edits):
    """Random cuts and insertions of markup: read from the bytes or parsed whole, the same outcome."""
    data = _BASE
    for at, cut, token in edits:
        at = min(at, len(data))
        data = data[:at] + token + data[at + cut:]
    assert fast(data) == reference(data)


def test_a_plain_libreoffice_part_is_read_from_its_bytes():
    """LibreOffice's shared strings (rich-text runs split by script): no item needs a parser."""
    data = sst(*(b"<si>" + RUN % "填报单位".encode() + RUN % ":".encode() + RUN % f"单位{i}".encode() + b"</si>" for i in range(50)))
    parsed = []
    real = X.parse
    X._ITEM_TEXTS.clear()
    try:
        X.parse = lambda d: parsed.append(d) or real(d)  # type: ignore[assignment]
        got = fast(data)
    finally:
        X.parse = real  # type: ignore[assignment]
    assert parsed == [] and got == reference(data) and got[7] == "填报单位:单位7"


def test_items_are_remembered_per_namespace_context():
    """An item proved well-formed is not parsed again in a part whose root declares the same
    namespaces (only counts differ, as between two units' files), and is proved again under a
    root that binds other prefixes: there it may not be well-formed, and is refused as the tree
    refuses it."""
    X.forget()
    item = b'<si><t a:b="1">v</t></si>'
    bound = sst(item, ITEMS[0], root=b"<sst " + MAIN + b' xmlns:a="urn:a" count="2" uniqueCount="2">')
    assert fast(bound) == reference(bound) == ["v", "是"]
    parsed = []
    real = X._well_formed
    X._well_formed = lambda d: parsed.append(d) or real(d)  # type: ignore[assignment]
    try:
        recount = sst(item, root=b"<sst " + MAIN + b' xmlns:a="urn:a" count="1" uniqueCount="1">')
        assert fast(recount) == reference(recount) == ["v"]
        assert parsed and not any(b"a:b" in d for d in parsed)  # the new head only
        unbound = sst(item, root=b"<sst " + MAIN + b' count="1" uniqueCount="1">')
        assert fast(unbound) == reference(unbound) and reference(unbound)[0] == "refused"
    finally:
        X._well_formed = real  # type: ignore[assignment]
