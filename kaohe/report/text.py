"""Chinese typography for office and system text."""

from __future__ import annotations

import re

_CJK = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef\u2014\u2018\u2019\u201c\u201d\u2026"
_CJK_RE = re.compile(f"[{_CJK}]")
_PUNCT = {",": "\uff0c", ";": "\uff1b", ":": "\uff1a", "!": "\uff01", "?": "\uff1f"}
_SINGLE = re.compile(f"(?<=[{_CJK}])[,;:!?]|[,;:!?](?=[{_CJK}])")
_PAREN = re.compile(r"\(([^()]*)\)")


def zh(text: str) -> str:
    """Full-width punctuation in Chinese text written with ASCII marks (office and system text only).

    ``,;:!?`` next to a Chinese character become their full-width forms
    (U+FF0C U+FF1B U+FF1A U+FF01 U+FF1F); a pair of parentheses becomes
    U+FF08/U+FF09 when it holds or follows Chinese. Numbers,
    times and URLs (``12:30``, ``file:///``) are left alone. Unit-supplied
    text is never passed through this: it is printed as the unit wrote it.
    """
    if not text:
        return text

    def paren(m: re.Match) -> str:
        start = m.start()
        before = m.string[start - 1] if start else ""
        if _CJK_RE.search(m.group(1)) or (before and _CJK_RE.match(before)):
            return "\uff08" + m.group(1) + "\uff09"
        return m.group(0)

    prev = None
    out = text
    while prev != out:  # nested parentheses: innermost first
        prev = out
        out = _PAREN.sub(paren, out)
    return _SINGLE.sub(lambda m: _PUNCT[m.group(0)], out)
