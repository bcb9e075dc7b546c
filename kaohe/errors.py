"""One place for every failure kaohe can report.

Two kinds of failure exist:

* ``KaoheError`` subclasses are raised when an input owned by the office
  (catalog, registry, review sheet, components file, CLI arguments) is wrong.
  They stop the command, because scoring with a half-read catalog is worse
  than not scoring.
* ``Problem`` records describe what is wrong in one unit's workbook. They are
  collected, never raised, so that one unit's bad file never stops the others.

Every code below is stable: it appears in feedback workbooks, manifests and
tests, so codes are only ever added, never renamed or reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Code(str, Enum):
    # --- office inputs (E1xx catalog, E2xx registry, E3xx review, E4xx components, E5xx run)
    CATALOG_SYNTAX = "E101"
    CATALOG_INVALID = "E102"
    REGISTRY_INVALID = "E201"
    REVIEW_INVALID = "E301"
    COMPONENTS_INVALID = "E401"
    RUN_INVALID = "E501"
    RUN_EXISTS = "E502"

    # --- workbook container and identity (W1xx)
    FILE_UNREADABLE = "W101"
    SHEET_MISSING = "W102"
    FINGERPRINT_MISSING = "W103"
    FINGERPRINT_YEAR = "W104"
    FINGERPRINT_CATALOG = "W105"
    FINGERPRINT_TEMPLATE = "W106"
    UNIT_UNKNOWN = "W107"
    UNIT_MISMATCH = "W108"
    TEMPLATE_EDITED = "W109"
    DUPLICATE_UNIT = "W110"
    NOT_A_WORKBOOK = "W111"

    # --- pre-flight: the file judged from its bytes before any XML parser sees it
    # (P1xx the file and its zip container, P2xx the streamed scan of the input sheet)
    FILE_TOO_LARGE = "P101"
    FILE_EMPTY = "P102"
    FILE_ENCRYPTED = "P103"
    FILE_OLD_XLS = "P104"
    FILE_TEXT = "P105"
    FILE_HTML = "P106"
    ZIP_CORRUPT = "P107"
    ZIP_NOT_XLSX = "P108"
    MACRO_ENABLED = "P109"
    STRICT_OOXML = "P110"
    ZIP_BOMB = "P111"
    ZIP_TOO_MANY_ENTRIES = "P112"
    ZIP_PART_TOO_LARGE = "P113"
    DUPLICATE_NAME = "P114"
    UNSAFE_NAME = "P115"
    EXTERNAL_LINK = "P116"
    ZIP_UNSUPPORTED = "P117"
    XML_DTD = "P118"
    XML_MALFORMED = "P119"
    ROWS_OUT_OF_ORDER = "P201"
    DUPLICATE_CELL = "P202"
    CELL_OUTSIDE_AREA = "P203"
    VALUE_UNDER_MERGE = "P204"
    SHEET_ANOMALY = "P205"

    # --- isolation: reading the workbook in a child process (P3xx)
    READ_CRASHED = "P301"
    READ_TIMEOUT = "P302"
    READ_MEMORY = "P303"

    # --- cell values (V1xx: parsing)
    FORMULA = "V101"
    ERROR_CELL = "V102"
    DATE_CELL = "V103"
    BOOL_CELL = "V104"
    NOT_A_NUMBER = "V105"
    NOT_AN_INTEGER = "V106"
    PERCENT_AMBIGUOUS = "V107"
    NOT_A_CHOICE = "V108"
    CONTROL_CHARS = "V109"
    NOT_FINITE = "V110"
    TEXT_TOO_LONG = "V111"

    # --- validation (C1xx: rules over parsed values)
    REQUIRED = "C101"
    BELOW_MIN = "C102"
    ABOVE_MAX = "C103"
    NUMERATOR_GT_DENOMINATOR = "C104"
    EVIDENCE_REQUIRED = "C105"
    NA_NOT_ALLOWED = "C106"
    NA_REASON_REQUIRED = "C107"
    NA_WITH_VALUES = "C108"


class KaoheError(Exception):
    """An office-owned input is wrong; the command stops with this message."""

    code: Code = Code.RUN_INVALID

    def __init__(self, message: str, *, details: list[str] | None = None):
        self.message = message
        self.details = list(details or [])
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"[{self.code.value}] {self.message}"]
        lines.extend(f"  - {d}" for d in self.details)
        return "\n".join(lines)


class CatalogError(KaoheError):
    code = Code.CATALOG_INVALID


class CatalogSyntaxError(CatalogError):
    code = Code.CATALOG_SYNTAX


class RegistryError(KaoheError):
    code = Code.REGISTRY_INVALID


class ReviewError(KaoheError):
    code = Code.REVIEW_INVALID


class ComponentsError(KaoheError):
    code = Code.COMPONENTS_INVALID


class RunError(KaoheError):
    code = Code.RUN_INVALID


class RunExistsError(RunError):
    code = Code.RUN_EXISTS


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one unit's workbook, addressed to the unit.

    ``message`` says what is wrong and ``expected`` what the unit must enter,
    both in Chinese. ``sheet``/``cell`` are empty for file-level problems.
    """

    code: Code
    file: str
    message: str
    expected: str = ""
    sheet: str = ""
    cell: str = ""
    item_id: str = ""
    field: str = ""
    value: str = ""

    def where(self) -> str:
        if self.sheet and self.cell:
            return f"{self.file} 工作表「{self.sheet}」单元格 {self.cell}"
        if self.sheet:
            return f"{self.file} 工作表「{self.sheet}」"
        return self.file

    def render(self) -> str:
        text = f"[{self.code.value}] {self.where()}:{self.message}"
        if self.expected:
            text += f";应为:{self.expected}"
        return text
