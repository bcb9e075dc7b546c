"""Pre-flight: judge a returned file from its bytes before any XML parser or openpyxl sees it.

Three layers, each bounded in time and memory whatever the file holds:

1. **The bytes.** Size cap; the real format sniffed from the first bytes
   (encrypted workbook, old .xls, CSV/text, HTML/XML renamed ``.xlsx``).
2. **The zip container**, from its central directory (nothing extracted to
   disk): entry count, per-part and total uncompressed size, compression ratio
   and overlapping entries (zip bombs), duplicate and hostile names, encrypted
   or exotic compression, VBA and macro sheets, external links; then every
   part is streamed once (CRC checked) and the prolog of every XML part is
   read with a parser that refuses any DOCTYPE; finally the package structure
   (content types, relationships, ``workbook.xml``: zip but not xlsx, Strict
   OOXML, macro-enabled, where each sheet lives).
3. **The input sheet**, once the unit's layout is known: a streaming scan of
   its XML that rejects rows out of order, duplicate cell references, any
   value outside the template's area and any value hidden under a merged
   range — the places where two readers of one file can disagree.

Every problem is a :class:`~kaohe.errors.Problem` with a Chinese message; the
public entry point is :func:`preflight`. :func:`open_package` and
:func:`scan_sheet` are its two halves, used by :mod:`kaohe.reading` to read
the fingerprint between them (the layout is only known after it).
"""

from __future__ import annotations

import io
import math
import posixpath
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable
from xml.parsers import expat

from kaohe import layout as L
from kaohe.errors import Code, Problem
from kaohe.layout import Layout
from kaohe import xlsx as X
from kaohe.xlsx import addr, col_index, col_letters, parse_range, parse_ref  # noqa: F401 - re-exported

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Every bound pre-flight enforces; a template returned by a unit is far below each."""

    file_bytes: int = 20 * MB
    entries: int = 1000
    part_bytes: int = 20 * MB  # any part, uncompressed
    xml_part_bytes: int = 10 * MB  # an XML part, uncompressed
    total_bytes: int = 50 * MB  # all parts, uncompressed
    xml_total_bytes: int = 12 * MB  # all XML parts, uncompressed: what openpyxl will parse
    ratio: int = 100  # uncompressed / compressed, for parts above ratio_floor
    ratio_floor: int = 1 * MB
    xml_elements: int = 500_000  # elements in all XML parts together
    workbook_cells: int = 100_000  # cells (and comments) in all sheets together
    shared_strings: int = 100_000
    sheet_elements: int = 200_000  # XML elements in the input sheet
    sheet_cells: int = 50_000
    merges: int = 5_000
    max_problems: int = 20  # per file: the first ones are enough to act on


LIMITS = Limits()

EXPECTED = "考核办下发的 .xlsx 自评表,用 Excel 或 WPS 正常保存"

# codes that mean "this is not an .xlsx workbook kaohe can read" (state not_a_workbook);
# every other pre-flight code is a workbook refused for what it contains (state rejected)
NOT_A_WORKBOOK_CODES = frozenset(
    {
        Code.NOT_A_WORKBOOK,
        Code.FILE_UNREADABLE,
        Code.FILE_EMPTY,
        Code.FILE_ENCRYPTED,
        Code.FILE_OLD_XLS,
        Code.FILE_TEXT,
        Code.FILE_HTML,
        Code.ZIP_CORRUPT,
        Code.ZIP_NOT_XLSX,
        Code.STRICT_OOXML,
    }
)

NS_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
NS_STRICT_MAIN = "http://purl.oclc.org/ooxml/spreadsheetml/main"
STRICT_PREFIX = "http://purl.oclc.org/ooxml/"
REL_OFFICE_DOCUMENT = "/officeDocument"
REL_WORKSHEET = "/worksheet"
REL_SHARED_STRINGS = "/sharedStrings"
REL_STYLES = "/styles"
REL_EXTERNAL_LINK = "/externalLink"

_CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


class Rejected(Exception):
    """A problem found while streaming; stops the pass that found it."""

    def __init__(self, code: Code, message: str, sheet: str = "", cell: str = ""):
        super().__init__(message)
        self.code, self.message, self.sheet, self.cell = code, message, sheet, cell


class _Stop(Exception):
    """Enough has been read."""


def _problem(name: str, code: Code, message: str, sheet: str = "", cell: str = "", expected: str = EXPECTED) -> Problem:
    return Problem(code, name, message, expected, sheet, cell)


# ------------------------------------------------------------------ the bytes


def _utf16_names(*names: str) -> list[bytes]:
    return [n.encode("utf-16-le") for n in names]


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # UTF-16 (Excel's "Unicode text")
        return True
    sample = head[:4096]
    if b"\x00" in sample:
        return False
    for enc in ("utf-8", "gb18030"):
        try:
            text = sample.decode(enc)
        except UnicodeDecodeError as exc:
            if exc.start < len(sample) - 4:
                continue
            text = sample[: exc.start].decode(enc, errors="ignore")
        if not text:
            continue
        ok = sum(1 for ch in text if ch.isprintable() or ch in "\r\n\t")
        if ok / len(text) >= 0.95:
            return True
    return False


def sniff(data: bytes, limits: Limits = LIMITS) -> tuple[Code, str] | None:
    """(code, Chinese message) when the bytes are plainly not an .xlsx zip, else None."""
    if not data:
        return Code.FILE_EMPTY, "文件为空(0 字节),可能上传或复制时出错"
    if len(data) > limits.file_bytes:
        return Code.FILE_TOO_LARGE, f"文件过大({len(data) / MB:.1f} MB,上限 {limits.file_bytes // MB} MB),自评表正常只有几十 KB,请删除插入的图片等内容后重新保存"
    if data.startswith(_CFB):
        if any(n in data for n in _utf16_names("EncryptedPackage", "EncryptionInfo")):
            return Code.FILE_ENCRYPTED, "文件设置了打开密码(已加密),无法读取;请取消密码后另存为 .xlsx"
        if any(n in data for n in _utf16_names("Workbook", "Book")):
            return Code.FILE_OLD_XLS, "文件是旧版 Excel 97-2003(.xls)格式,请在 Excel/WPS 中另存为 .xlsx"
        return Code.FILE_OLD_XLS, "文件为加密的工作簿或旧版 .xls 格式,请取消密码后另存为 .xlsx"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")):
        return None
    head = data[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if head.startswith(b"<?xml") and b"urn:schemas-microsoft-com:office:spreadsheet" in data[:8192]:
        return Code.FILE_HTML, "文件实际是“XML 表格 2003”格式,不是 .xlsx 工作簿,请在 Excel/WPS 中另存为 .xlsx"
    if head.startswith((b"<!doctype html", b"<html", b"<table", b"<head", b"<body", b"<meta")) or b"<html" in head[:1024]:
        return Code.FILE_HTML, "文件实际是网页(HTML),不是 .xlsx 工作簿,请在 Excel/WPS 中另存为 .xlsx"
    if head.startswith(b"mime-version:"):
        return Code.FILE_HTML, "文件实际是单个文件网页(MHT),不是 .xlsx 工作簿,请在 Excel/WPS 中另存为 .xlsx"
    if data.startswith(b"%PDF"):
        return Code.NOT_A_WORKBOOK, "文件实际是 PDF 文档,不是 .xlsx 工作簿;请报送填写好的 .xlsx 自评表"
    if _looks_like_text(data):
        return Code.FILE_TEXT, "文件是 CSV 或纯文本,只是扩展名改成了 .xlsx,不是 .xlsx 工作簿;请在考核办下发的自评表中填写后保存"
    return Code.NOT_A_WORKBOOK, "文件不是 .xlsx 工作簿(无法识别的格式,可能是其他文件改了扩展名),请报送考核办下发的自评表"


# ------------------------------------------------------------------ XML plumbing


def _local(name: str) -> str:
    return name.rpartition("}")[2]


def _ns(name: str) -> str:
    return name.rpartition("}")[0]


def _forbid_dtd(*_args) -> None:
    raise Rejected(Code.XML_DTD, "")


def _parser(start=None, end=None, chars=None) -> expat.XMLParserType:
    """An expat parser that refuses any DOCTYPE or entity declaration (so no entity can expand)."""
    p = expat.ParserCreate(namespace_separator="}")
    p.StartDoctypeDeclHandler = _forbid_dtd
    p.EntityDeclHandler = _forbid_dtd
    p.UnparsedEntityDeclHandler = _forbid_dtd
    p.NotationDeclHandler = _forbid_dtd
    p.ExternalEntityRefHandler = lambda *a: 0  # never fetch anything
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    p.buffer_text = True
    if start:
        p.StartElementHandler = start
    if end:
        p.EndElementHandler = end
    if chars:
        p.CharacterDataHandler = chars
    return p


def _stream(fh, parser: expat.XMLParserType, limit: int, chunk: int = 64 * 1024) -> None:
    """Feed at most ``limit`` bytes of ``fh`` to ``parser``."""
    seen = 0
    while True:
        block = fh.read(chunk)
        if not block:
            break
        seen += len(block)
        if seen > limit:
            raise Rejected(Code.ZIP_PART_TOO_LARGE, "")
        parser.Parse(block, False)
    parser.Parse(b"", True)


# ------------------------------------------------------------------ the package


@dataclass
class Package:
    """An .xlsx zip that passed the container checks: where its sheets and shared strings live."""

    name: str
    zf: zipfile.ZipFile
    infos: dict[str, zipfile.ZipInfo]
    sheets: dict[str, str] = field(default_factory=dict)  # sheet name → part name
    shared_strings: str | None = None
    styles: str | None = None
    limits: Limits = LIMITS
    #: the XML parts' bytes, decompressed once by the container checks
    parts: dict[str, bytes] = field(default_factory=dict)
    #: the workbook part (lower case)
    workbook: str = ""
    #: the shared strings, parsed when first wanted (or why they could not be)
    _sst: "X.SharedStrings | X.XmlRefused | None" = field(default=None, repr=False)

    def open(self, part: str):
        return self.zf.open(self.infos[part])

    def close(self) -> None:
        self.zf.close()

    def __enter__(self) -> "Package":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def read(self, part: str) -> bytes:
        """A part's bytes (its size was checked against the limits on the zip directory)."""
        found = self.parts.get(part)
        return found if found is not None else self.zf.read(self.infos[part])

    def strings(self, wanted: set[int]) -> dict[int, str]:
        """The shared strings with the given indices; the part is parsed once per package (the
        fingerprint and the input sheet both ask), and refused the same way each time."""
        if not wanted or not self.shared_strings or self.shared_strings not in self.infos:
            return {}
        if self._sst is None:
            try:
                self._sst = X.SharedStrings(self.read(self.shared_strings))
            except X.XmlRefused as exc:
                self._sst = exc
                raise
        if isinstance(self._sst, X.XmlRefused):
            raise self._sst
        return self._sst.get(wanted)

    def number_formats(self) -> tuple[str, ...]:
        """Each cell style's number format (styles.xml, cellXfs order); () without styles."""
        if not self.styles or self.styles not in self.infos:
            return ()
        return X.number_formats(self.read(self.styles))

    def read_values(self, sheet: str, max_row: int, max_col: int) -> dict[tuple[int, int], str]:
        """Cell texts of ``sheet`` within A1:(max_row, max_col), the way a spreadsheet shows them.

        Raises :class:`Rejected` when the sheet's structure is ambiguous (rows out of
        order, duplicate cells): then no reader could say which value is meant.
        """
        limits = self.limits
        scan = X.SheetScan(self.name, sheet, None, X.SheetLimits(limits.sheet_elements, limits.sheet_cells, limits.merges, limits.max_problems), corner=(max_row, max_col))
        try:
            scan.run(self.read(self.sheets[sheet]))
        except X.XmlRefused as exc:
            raise Rejected(exc.code, "", sheet) from None
        if scan.problems:
            p = scan.problems[0]
            raise Rejected(p.code, p.message, sheet, p.cell)
        indices = {X.shared_index(c.v) for c in scan.cells.values() if c.kind == "s"}
        shared = self.strings(indices - {None})
        out = {}
        for key, c in scan.cells.items():
            if c.formula is not None:
                out[key] = "=" + c.formula
            elif c.kind == "s":
                idx = X.shared_index(c.v)
                out[key] = shared.get(idx, "") if idx is not None else ""
            elif c.kind == "inlineStr":
                out[key] = c.inline
            elif c.kind == "b":
                out[key] = str(c.v.strip() not in ("", "0"))
            elif c.kind in ("n", "") and c.v:
                out[key] = _number_text(c.v)
            else:
                out[key] = c.v
        return out


def _number_text(v: str) -> str:
    """A numeric cell as openpyxl gives it back: 2025 stays 2025, 1.0 becomes 1."""
    try:
        return str(int(v))
    except ValueError:
        pass
    try:
        f = float(v)
    except ValueError:
        return v
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


_CONTROL_IN_NAME = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"[A-Za-z]:")


@lru_cache(maxsize=4096)
def _hostile_name(name: str) -> bool:
    if name.startswith(("/", "\\")) or _DRIVE.match(name) or "\\" in name:
        return True
    if _CONTROL_IN_NAME.search(name):
        return True
    return any(part in ("..", ".") for part in name.split("/"))


def _zip_directory(name: str, zf: zipfile.ZipFile, data_len: int, limits: Limits) -> list[Problem]:
    """Checks on the central directory alone: nothing is decompressed."""
    infos = zf.infolist()
    out: list[Problem] = []
    if len(infos) > limits.entries:
        return [_problem(name, Code.ZIP_TOO_MANY_ENTRIES, f"文件内部包含 {len(infos)} 个条目(上限 {limits.entries}),不是正常的自评表")]
    counts = Counter(i.filename.lower() for i in infos)
    dup = sorted(n for n, k in counts.items() if k > 1)
    if dup:
        out.append(_problem(name, Code.DUPLICATE_NAME, f"文件内部有重名条目({'、'.join(dup[:3])}),不同软件会读到不同内容,已拒收"))
    bad = [i.filename for i in infos if _hostile_name(i.filename)]
    if bad:
        out.append(_problem(name, Code.UNSAFE_NAME, f"文件内部条目名称不安全(「{bad[0][:60]}」:绝对路径、“..”或反斜杠),解压时可能写到别处,已拒收"))
    total = 0
    for i in infos:
        if i.flag_bits & 0x1:
            out.append(_problem(name, Code.ZIP_UNSUPPORTED, "文件内部条目被加密,无法读取;请取消密码后另存为 .xlsx"))
            break
        if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            out.append(_problem(name, Code.ZIP_UNSUPPORTED, f"文件使用了非标准的压缩方式(方法 {i.compress_type}),请用 Excel 或 WPS 重新保存为 .xlsx"))
            break
    xml_total = 0
    for i in infos:
        total += i.file_size
        is_xml = i.filename.lower().endswith((".xml", ".rels", ".vml"))
        xml_total += i.file_size if is_xml else 0
        cap = limits.xml_part_bytes if is_xml else limits.part_bytes
        if i.file_size > limits.ratio_floor and i.file_size > limits.ratio * max(i.compress_size, 1):
            out.append(_problem(name, Code.ZIP_BOMB, f"文件内部条目 {i.filename[:60]} 压缩比异常({i.file_size // max(i.compress_size, 1)}:1,解压后 {i.file_size / MB:.0f} MB),疑似“压缩炸弹”,已拒收"))
            break
        if i.file_size > cap:
            out.append(_problem(name, Code.ZIP_PART_TOO_LARGE, f"文件内部条目 {i.filename[:60]} 解压后 {i.file_size / MB:.1f} MB,超过上限 {cap // MB} MB"))
            break
    else:
        if total > limits.total_bytes:
            out.append(_problem(name, Code.ZIP_PART_TOO_LARGE, f"文件解压后共 {total / MB:.1f} MB,超过上限 {limits.total_bytes // MB} MB"))
        elif xml_total > limits.xml_total_bytes:
            out.append(_problem(name, Code.ZIP_PART_TOO_LARGE, f"文件中的表格数据解压后共 {xml_total / MB:.1f} MB,超过上限 {limits.xml_total_bytes // MB} MB,不是正常的自评表"))
    # overlapping entries (several names sharing one compressed stream) are a zip bomb too
    spans = sorted((i.header_offset, i.header_offset + 30 + i.compress_size) for i in infos)
    for (_, end), (nxt, _) in zip(spans, spans[1:]):
        if nxt < end:
            out.append(_problem(name, Code.ZIP_BOMB, "文件内部条目相互重叠(同一段数据被多个条目引用),疑似“压缩炸弹”,已拒收"))
            break
    if any(s[1] > data_len for s in spans):
        out.append(_problem(name, Code.ZIP_CORRUPT, "文件不完整(内部条目超出文件末尾),可能在上传或复制时被截断,请重新保存后报送"))
    return out


def _macro_or_links(name: str, zf: zipfile.ZipFile) -> list[Problem]:
    out = []
    original = [i.filename for i in zf.infolist()]
    names = [n.lower() for n in original]
    if any(n.endswith("vbaproject.bin") or n.startswith("xl/macrosheets/") for n in names):
        out.append(_problem(name, Code.MACRO_ENABLED, "文件包含宏(VBA 代码或宏表),出于安全考虑已拒收;请另存为不含宏的 .xlsx 工作簿", expected="不含宏的 .xlsx 自评表"))
    links = [o for o, n in zip(original, names) if n.startswith(("xl/externallinks/", "xl/connections.xml", "xl/querytables/"))]
    if links:
        out.append(_problem(name, Code.EXTERNAL_LINK, f"文件包含指向其他工作簿或外部数据的链接({links[0][:60]}),数值可能来自其他文件;请删除外部链接(“数据—编辑链接—断开链接”)后保存", expected="不含外部链接的 .xlsx 自评表"))
    return out


_CELL_TAG = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?(?:c|comment)[\s/>]")
_SI_TAG = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?si[\s/>]")


#: parts already decompressed in this process, by everything that decides what ``ZipFile.read``
#: gives for them (see :func:`_read_part`); the parts of one writer's template (theme, styles,
#: relationships, the instructions sheet) are the same bytes in every returned file
_PARTS: dict[tuple, bytes] = {}
_PARTS_KEPT_AT_MOST = 256
_PART_KEPT_BYTES = 64 * 1024


def _read_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, container: bytes) -> bytes:
    """``zf.read(info)``, once per distinct part in this process.

    The key holds the entry's local header (but its time) and compressed bytes as they are
    in the file (``container``), with the central directory's name, flags, method, size and
    CRC: all that ``ZipFile.read`` decides on. A part not seen before is read by ``zipfile`` itself
    (its checks, its exceptions); only parts up to 64 KB are kept (a unit's own input
    sheet never recurs).
    """
    at = info.header_offset
    head = container[at : at + 30]
    if info.file_size > _PART_KEPT_BYTES or len(head) != 30:
        return zf.read(info)
    start = at + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    if start + info.compress_size > len(container):
        return zf.read(info)  # runs past the end: zipfile says how
    # (the local header's modification time, bytes 10-13, changes nothing read: left out; the
    # end offset newer zipfile versions check entries against is in)
    key = (
        info.orig_filename, info.flag_bits, info.compress_type, info.file_size, info.compress_size, info.CRC,
        getattr(info, "_end_offset", None), head[:10], container[at + 14 : start + info.compress_size],
    )
    return X.remembered(_PARTS, key, lambda: zf.read(info), at_most=_PARTS_KEPT_AT_MOST)


def _stream_parts(name: str, zf: zipfile.ZipFile, limits: Limits, keep: dict[str, bytes] | None = None, container: bytes = b"") -> list[Problem]:
    """Decompress every part once (CRC and sizes checked) and bound what every XML part holds.

    From the bytes, at C speed: no XML part may declare a DOCTYPE or an entity
    (whichever part it is in), and the elements, cells and shared strings of all
    parts together are counted (upper bounds) against the limits, so that every
    later parse is bounded, not just the bytes. A part that is not well-formed is
    left to the reader of that part to report. ``keep`` receives each XML part's
    bytes (by lower-case name) for the readers that come next.

    Counting by pattern is only needed once the parts could hold that many: until
    their "<" characters (a bound of all three counts) pass the smallest limit, the
    counts cannot, and a normal workbook never gets there.
    """
    count = {"elements": 0, "cells": 0, "strings": 0}
    threshold = min(limits.xml_elements, limits.workbook_cells, limits.shared_strings)
    bound, exact = 0, False
    pending: list[tuple[str, bytes]] = []  # parts seen while counting by the bound

    def over(part: str, data: bytes) -> Problem | None:
        count["elements"] += X.element_bound(data)
        count["cells"] += len(_CELL_TAG.findall(data))
        count["strings"] += len(_SI_TAG.findall(data))
        if count["elements"] > limits.xml_elements or count["cells"] > limits.workbook_cells or count["strings"] > limits.shared_strings:
            what = (
                f"单元格和批注超过 {limits.workbook_cells} 个" if count["cells"] > limits.workbook_cells
                else f"共享文字超过 {limits.shared_strings} 条" if count["strings"] > limits.shared_strings
                else f"XML 元素超过 {limits.xml_elements} 个"
            )
            return _problem(name, Code.SHEET_ANOMALY, f"工作簿内容异常庞大({what},见 {part[:60]}),不是正常的自评表,已拒收")
        return None

    for info in zf.infolist():
        try:
            data = _read_part(zf, info, container)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
            return [_problem(name, Code.ZIP_CORRUPT, f"文件数据已损坏(内部条目 {info.filename[:60]} 无法解压:{type(exc).__name__}),请重新保存后报送")]
        original = data
        if data.startswith((b"\xff\xfe", b"\xfe\xff")):
            data = data.decode("utf-16", errors="replace").encode("utf-8")
        elif not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            continue
        if X.declares_dtd(data):
            return [_problem(name, Code.XML_DTD, f"文件内部 {info.filename[:60]} 含有 DOCTYPE/实体声明(可被用于“实体膨胀”攻击),正常的 .xlsx 不含此内容,已拒收")]
        if keep is not None:
            keep[info.filename.lower()] = original
        if not exact:
            bound += data.count(b"<")
            if bound <= threshold:
                pending.append((info.filename, data))
                continue
            # from here on, count exactly: the parts before this one cannot have crossed a limit
            exact = True
            for part, earlier in pending:
                found = over(part, earlier)
                if found:  # pragma: no cover - each count is at most the bound
                    return [found]
            pending.clear()
        found = over(info.filename, data)
        if found:
            return [found]
    return []


def _parse_small(zf: zipfile.ZipFile, info: zipfile.ZipInfo, start, limits: Limits, parts: dict[str, bytes] | None = None) -> None:
    """Parse a small part with ``start`` as its start-element handler: from the bytes the container
    checks kept (``parts``, by lower-case name), else streamed from the zip."""
    data = parts.get(info.filename.lower()) if parts else None
    try:
        if data is None or len(data) > limits.xml_part_bytes:  # (streamed: stops where it always did)
            with zf.open(info) as fh:
                _stream(fh, _parser(start), limits.xml_part_bytes)
        else:
            _parser(start).Parse(data, True)
    except _Stop:
        pass


def _resolve(base_dir: str, target: str) -> str:
    if target.startswith("/"):
        return posixpath.normpath(target.lstrip("/"))
    return posixpath.normpath(posixpath.join(base_dir, target))


def _rels(zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], part: str, limits: Limits, parts: dict[str, bytes] | None = None) -> list[dict[str, str]]:
    """Relationships of ``part``: Id, Type, Target (resolved to a part name), TargetMode."""
    d, base = posixpath.split(part)
    rels_name = posixpath.join(d, "_rels", base + ".rels")
    info = infos.get(rels_name.lower())
    out: list[dict[str, str]] = []
    if info is None:
        return out

    def start(name, attrs):
        if _local(name) == "Relationship":
            a = {_local(k): v for k, v in attrs.items()}
            if len(out) > 10_000:
                raise Rejected(Code.ZIP_TOO_MANY_ENTRIES, "")
            target = a.get("Target", "")
            if a.get("TargetMode", "") != "External":
                target = _resolve(d, target)
            out.append({"Id": a.get("Id", ""), "Type": a.get("Type", ""), "Target": target, "TargetMode": a.get("TargetMode", "")})

    _parse_small(zf, info, start, limits, parts)
    return out


#: the sheets, shared strings and styles of each package structure that passed, by everything
#: :func:`_structure` reads when the workbook is xl/workbook.xml (see :func:`_known_structure`)
_STRUCTURES: dict[tuple, tuple[dict[str, str], str | None, str | None]] = {}
_STRUCTURE_PARTS = ("[content_types].xml", "_rels/.rels", "xl/workbook.xml", "xl/_rels/workbook.xml.rels")


def _known_structure(name: str, zf: zipfile.ZipFile, limits: Limits, parts: dict[str, bytes]) -> tuple[list[Problem], Package | None]:
    """:func:`_structure`, once per distinct structure in this process: its outcome depends on the
    part names and on the bytes of the four parts it reads when the root relationships name
    xl/workbook.xml (a template's, in every file one writer saved). Only an outcome without
    problems is kept, and only when those four parts were read from their bytes and hold 64 KB
    at most together."""
    infos = zf.infolist()
    small = [parts.get(p) for p in _STRUCTURE_PARTS]
    if any(b is None for b in small) or sum(map(len, small)) > min(limits.xml_part_bytes, _PART_KEPT_BYTES):
        return _structure(name, zf, limits, parts)
    key = (limits, tuple(i.filename.lower() for i in infos), *small)
    found = _STRUCTURES.get(key)
    if found is None:
        problems, pkg = _structure(name, zf, limits, parts)
        if problems or pkg is None or pkg.workbook != "xl/workbook.xml":
            return problems, pkg
        X.remembered(_STRUCTURES, key, lambda: (dict(pkg.sheets), pkg.shared_strings, pkg.styles), at_most=64)
        return problems, pkg
    sheets, shared_strings, styles = found
    infos_by_name = {i.filename.lower(): i for i in infos}
    return [], Package(name, zf, infos_by_name, dict(sheets), shared_strings, styles, limits=limits, workbook="xl/workbook.xml")


def _structure(name: str, zf: zipfile.ZipFile, limits: Limits, parts: dict[str, bytes] | None = None) -> tuple[list[Problem], Package | None]:
    infos = {i.filename.lower(): i for i in zf.infolist()}
    names = set(infos)
    if "[content_types].xml" not in names:
        if "mimetype" in names:
            with zf.open(infos["mimetype"]) as fh:
                mime = fh.read(200)
            if b"opendocument.spreadsheet" in mime:
                return [_problem(name, Code.ZIP_NOT_XLSX, "文件是 OpenDocument 表格(.ods)格式,请在 WPS/LibreOffice 中另存为 Excel 工作簿(.xlsx)")], None
        return [_problem(name, Code.ZIP_NOT_XLSX, "文件是 zip 压缩包,不是 .xlsx 工作簿(缺少 [Content_Types].xml);请报送考核办下发的自评表本身,不要压缩打包")], None
    # content types: macro-enabled main part?
    ctypes: list[str] = []

    def ct_start(tag, attrs):
        if _local(tag) in ("Override", "Default"):
            ctypes.append(attrs.get("ContentType", ""))

    _parse_small(zf, infos["[content_types].xml"], ct_start, limits, parts)
    if any("macroenabled" in c.lower() for c in ctypes):
        return [_problem(name, Code.MACRO_ENABLED, "文件是启用宏的工作簿(.xlsm),出于安全考虑已拒收;请另存为不含宏的 .xlsx 工作簿", expected="不含宏的 .xlsx 自评表")], None
    root_rels = _rels(zf, infos, "", limits, parts) if "_rels/.rels" in names else []
    main = [r for r in root_rels if r["Type"].endswith(REL_OFFICE_DOCUMENT)]
    if any(r["Type"].startswith(STRICT_PREFIX) for r in root_rels):
        return [_problem(name, Code.STRICT_OOXML, "文件保存成了“Strict Open XML 电子表格”格式,无法读取;请在 Excel 中另存为“Excel 工作簿(*.xlsx)”")], None
    wb_part = main[0]["Target"] if main else "xl/workbook.xml"
    if wb_part.lower() not in names:
        if "word/document.xml" in names:
            what = "Word 文档"
        elif "ppt/presentation.xml" in names:
            what = "PowerPoint 演示文稿"
        else:
            what = "Office 文件"
        return [_problem(name, Code.ZIP_NOT_XLSX, f"文件是{what},不是 Excel 工作簿(缺少 xl/workbook.xml),请报送考核办下发的自评表")], None
    wb_info = infos[wb_part.lower()]
    sheets: list[tuple[str, str]] = []
    flags = {"ns": None, "external": False}

    def wb_start(tag, attrs):
        if flags["ns"] is None:
            flags["ns"] = _ns(tag)
        local = _local(tag)
        if local == "sheet":
            rid = next((v for k, v in attrs.items() if _local(k) == "id" and _ns(k)), "")
            sheets.append((attrs.get("name", ""), rid))
            if len(sheets) > 1000:
                raise Rejected(Code.ZIP_TOO_MANY_ENTRIES, "")
        elif local == "externalReference":
            flags["external"] = True
        elif local == "definedNames":
            raise _Stop  # nothing further is needed

    try:
        _parse_small(zf, wb_info, wb_start, limits, parts)
    except expat.ExpatError as exc:
        return [_problem(name, Code.XML_MALFORMED, f"工作簿结构文件 {wb_part} 格式错误(第 {exc.lineno} 行),文件已损坏,请重新保存后报送")], None
    if flags["ns"] == NS_STRICT_MAIN or (flags["ns"] or "").startswith(STRICT_PREFIX):
        return [_problem(name, Code.STRICT_OOXML, "文件保存成了“Strict Open XML 电子表格”格式,无法读取;请在 Excel 中另存为“Excel 工作簿(*.xlsx)”")], None
    if flags["ns"] != NS_MAIN:
        return [_problem(name, Code.ZIP_NOT_XLSX, "文件中的工作簿不是标准的 Excel 格式(命名空间不符),请在 Excel/WPS 中另存为 .xlsx")], None
    wb_rels = _rels(zf, infos, wb_part, limits, parts)
    if flags["external"] or any(r["Type"].endswith(REL_EXTERNAL_LINK) for r in wb_rels):
        return [_problem(name, Code.EXTERNAL_LINK, "文件包含指向其他工作簿的外部链接,数值可能来自其他文件;请断开外部链接后保存", expected="不含外部链接的 .xlsx 自评表")], None
    by_id = {r["Id"]: r for r in wb_rels}
    seen = Counter(n.casefold() for n, _ in sheets)
    dup = sorted(n for n, k in seen.items() if k > 1)
    if dup:
        return [_problem(name, Code.DUPLICATE_NAME, f"工作簿中有重名的工作表(「{dup[0][:31]}」),已拒收")], None
    pkg = Package(name, zf, infos, limits=limits, workbook=wb_part.lower())
    for sheet_name, rid in sheets:
        rel = by_id.get(rid)
        if rel is None or rel["TargetMode"] == "External":
            return [_problem(name, Code.ZIP_CORRUPT, f"工作表「{sheet_name[:31]}」的内容在文件中找不到,文件结构已损坏,请重新保存后报送", sheet=sheet_name[:31])], None
        part = rel["Target"].lower()
        if part not in names:
            return [_problem(name, Code.ZIP_CORRUPT, f"工作表「{sheet_name[:31]}」的内容在文件中找不到,文件结构已损坏,请重新保存后报送", sheet=sheet_name[:31])], None
        pkg.sheets[sheet_name] = part
    ss = [r for r in wb_rels if r["Type"].endswith(REL_SHARED_STRINGS)]
    if ss and ss[0]["Target"].lower() in names:
        pkg.shared_strings = ss[0]["Target"].lower()
    st = [r for r in wb_rels if r["Type"].endswith(REL_STYLES)]
    if st and st[0]["Target"].lower() in names:
        pkg.styles = st[0]["Target"].lower()
    return [], pkg


def open_package(data: bytes, name: str, limits: Limits = LIMITS) -> tuple[list[Problem], Package | None]:
    """Every container check; on success the package, ready for :func:`scan_sheet`.

    The caller closes the package. Nothing here raises for a bad file.
    """
    found = sniff(data, limits)
    if found:
        return [_problem(name, *found)], None
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError, NotImplementedError) as exc:
        return [
            _problem(name, Code.ZIP_CORRUPT, f"文件已损坏或不完整(可能在上传、复制或邮件传输中被截断:{type(exc).__name__}),请重新保存后报送")
        ], None
    ok = False
    try:
        problems = _zip_directory(name, zf, len(data), limits)
        if not problems:
            problems = _macro_or_links(name, zf)
        parts: dict[str, bytes] = {}
        if not problems:
            problems = _stream_parts(name, zf, limits, parts, data)
        if problems:
            return problems[: limits.max_problems], None
        try:
            problems, pkg = _known_structure(name, zf, limits, parts)
            if pkg is not None:
                pkg.parts = parts
        except Rejected as exc:
            return [_rejected_problem(name, exc)], None
        except expat.ExpatError as exc:
            return [_problem(name, Code.XML_MALFORMED, f"文件内部结构文件格式错误(第 {exc.lineno} 行),文件已损坏,请重新保存后报送")], None
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
            return [_problem(name, Code.ZIP_CORRUPT, f"文件结构已损坏({type(exc).__name__}),请重新保存后报送")], None
        ok = pkg is not None
        return problems, pkg
    finally:
        if not ok:
            zf.close()


def _rejected_problem(name: str, exc: Rejected) -> Problem:
    if exc.code == Code.XML_DTD:
        return _problem(name, Code.XML_DTD, exc.message or "文件内部含有 DOCTYPE/实体声明,正常的 .xlsx 不含此内容,已拒收", exc.sheet, exc.cell)
    if exc.code == Code.ZIP_PART_TOO_LARGE:
        return _problem(name, Code.ZIP_PART_TOO_LARGE, exc.message or "文件内部条目过大,超过上限", exc.sheet, exc.cell)
    if exc.code == Code.ZIP_TOO_MANY_ENTRIES:
        return _problem(name, Code.SHEET_ANOMALY, exc.message or "文件内部结构异常(条目过多)", exc.sheet, exc.cell)
    return _problem(name, exc.code, exc.message, exc.sheet, exc.cell)


# ------------------------------------------------------------------ the input sheet


@dataclass
class SheetRead:
    """The input sheet after its bounded pass: problems, the area's cells, their strings and formats."""

    problems: list[Problem]
    scan: X.SheetScan | None = None
    strings: dict[int, str] = field(default_factory=dict)
    formats: tuple[str, ...] = ()

    def value(self, address: str) -> tuple[object, str, str]:
        """(value, data type, number format) of a cell by address (openpyxl's conventions)."""
        return self.value_at(parse_ref(address))

    def value_at(self, pos: tuple[int, int] | None) -> tuple[object, str, str]:
        """:meth:`value` by (row, column), for a reader that has the position in hand."""
        cell = self.scan.cell(pos) if self.scan is not None and pos is not None else None
        return X.value(cell, self.strings, self.formats)

    def tokens(self, positions: tuple) -> tuple | None:
        """The plain pass's tokens at ``positions`` (None where a cell is absent); None when the
        exact pass read the sheet. Equal tokens are equal cells."""
        if self.scan is None or not self.scan.plain:
            return None
        return tuple(map(self.scan.raw.get, positions))

    def raw_tokens(self) -> dict:
        """The plain pass's tokens by (row, column), a cell's token only where it has one (empty
        when the exact pass read the sheet): the same token bytes, the same cell."""
        if self.scan is None or not self.scan.plain:
            return {}
        return self.scan.raw

    def text(self, address: str) -> str | None:
        """A text cell's string (None for a number, formula or any other cell): what :meth:`value`
        gives for it, cheaper."""
        return self.scan.text(parse_ref(address), self.strings) if self.scan is not None else None


def read_sheet(pkg: Package, sheet: str, lay: Layout) -> SheetRead:
    """The bounded pass over the unit's input sheet against its layout: checks and values."""
    part = pkg.sheets.get(sheet)
    if part is None:
        return SheetRead([])
    limits = pkg.limits
    scan = X.SheetScan(pkg.name, sheet, parse_range(lay.area), X.SheetLimits(limits.sheet_elements, limits.sheet_cells, limits.merges, limits.max_problems))
    out = SheetRead(scan.problems, scan)
    data = b""
    try:
        data = pkg.read(part)
        scan.run(data)
        out.strings = scan.finish(pkg.strings)
        if not scan.problems:
            out.formats = pkg.number_formats()
    except X.XmlRefused as exc:
        if exc.code == Code.XML_DTD:
            scan.problems.append(_problem(pkg.name, Code.XML_DTD, "工作表含有 DOCTYPE/实体声明,正常的 .xlsx 不含此内容,已拒收", sheet))
        else:
            cell = X.cell_at(data, exc.line, exc.column)
            near = f"单元格 {cell} 处" if cell else f"第 {exc.line} 行第 {exc.column} 列"
            scan.problems.append(
                _problem(pkg.name, Code.XML_MALFORMED, f"工作表数据格式错误({near}),含有 XML 不允许的字符(如不可见的控制字符)或格式已损坏,请删除该内容后重新保存", sheet, cell)
            )
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:
        scan.problems.append(_problem(pkg.name, Code.ZIP_CORRUPT, f"工作表数据已损坏({type(exc).__name__}),请重新保存后报送", sheet))
    del out.problems[limits.max_problems:]
    return out


def scan_sheet(pkg: Package, sheet: str, lay: Layout) -> list[Problem]:
    """The problems of :func:`read_sheet` alone."""
    return read_sheet(pkg, sheet, lay).problems


def preflight(data: bytes, name: str, layout: Layout | None = None, limits: Limits = LIMITS) -> list[Problem]:
    """Every pre-flight check: the container always, the input sheet when the layout is known."""
    problems, pkg = open_package(data, name, limits)
    if pkg is None:
        return problems
    with pkg:
        if layout is None or L.FORM_SHEET not in pkg.sheets:
            return problems
        return scan_sheet(pkg, L.FORM_SHEET, layout)
