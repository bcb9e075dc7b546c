#!/usr/bin/env python3
"""Build the bundled Chinese font of kaohe: Kaohe Sans SC (Regular, Bold).

Source: Noto Sans CJK SC 2.004 (SIL OFL 1.1), as shipped by Debian's
``fonts-noto-cjk`` package (CFF outlines inside a TTC collection).

What it does, per weight:

1. extract the Simplified Chinese face (``NotoSansCJKsc-<Weight>``) from the
   TTC (an OTF file of a single face is accepted too);
2. subset it to GBK (all 21,791 two-byte GBK characters, which include rare
   name characters such as 喆 堃 昇 玥) + ASCII + Latin-1 + CJK punctuation +
   full-width forms + ①-⑳ and a few report symbols (see ``EXTRA_RANGES``);
   hinting dropped; layout features kept except ``locl`` and the vertical
   ones (``vert``/``vrt2``/... would nearly double the glyph count with
   glyphs WeasyPrint never uses, and ``locl`` pulls the JP/KR/TC variants);
   ``kern``/``palt`` GPOS is kept (about 32 KB);
3. convert the CFF cubic outlines to TrueType quadratic ``glyf`` outlines
   (fontTools cu2qu, max error 1 font unit of 1000), post table format 3;
4. rename the family (required by the OFL for a Modified Version) to
   ``Kaohe Sans SC`` / ``KaoheSansSC-<Weight>``;
5. write a static TrueType ``.ttf`` (no WOFF2, no variations).

Subsetting is done before the outline conversion only because it is faster
(22 k instead of 65 k glyphs to convert); each glyph converts the same
way either order.

Usage (fontTools is a build-time tool only, not a runtime dependency):

    /work/venv/bin/pip install fonttools        # if missing
    /work/venv/bin/python tools/build_font.py   # defaults below
    /work/venv/bin/python tools/build_font.py \\
        --regular /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc \\
        --bold    /usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc \\
        --out     kaohe/report/fonts \\
        [--charset gbk|gb2312] [--extra-chars 'XYZ'] [--max-err 1.0]

Takes about a minute per weight.  The OFL text and README.md in the output
directory are maintained by hand, not written by this script.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

from fontTools import subset
from fontTools.pens.cu2quPen import Cu2QuPen
from fontTools.pens.ttGlyphPen import TTGlyphPen
from fontTools.ttLib import TTCollection, TTFont, newTable

FAMILY = "Kaohe Sans SC"
PS_FAMILY = "KaoheSansSC"
WEIGHTS = {"Regular": 400, "Bold": 700}
NOTO_DIR = Path("/usr/share/fonts/opentype/noto")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "kaohe" / "report" / "fonts"

# Code points added on top of the GBK (or GB2312) double-byte repertoire.
# Ranges are inclusive; code points absent from the source font are skipped
# and reported.
EXTRA_RANGES = [
    (0x0020, 0x007E),  # ASCII
    (0x00A0, 0x00FF),  # Latin-1 (nbsp, soft hyphen, ° ± × ÷ · ¥ © ...)
    (0x2010, 0x2027),  # ‐ – — ‘ ’ “ ” • … etc.
    (0x2030, 0x203B),  # ‰ ′ ″ ※
    (0x200B, 0x200D),  # zero-width space / joiners
    (0x2060, 0x2060),  # word joiner
    (0x20AC, 0x20AC),  # €
    (0x2103, 0x2103),  # ℃
    (0x2116, 0x2116),  # №
    (0x2160, 0x216B),  # Ⅰ-Ⅻ
    (0x2190, 0x2199),  # arrows
    (0x2212, 0x2212),  # − minus sign
    (0x2460, 0x2473),  # ①-⑳ (GBK stops at ⑩)
    (0x2474, 0x249B),  # ⑴-⒇ ⒈-⒛
    (0x25A0, 0x25CF),  # ■ □ ▲ △ ▼ ▽ ◆ ◇ ○ ● ...
    (0x2605, 0x2606),  # ★ ☆
    (0x2713, 0x2714),  # ✓ ✔
    (0x2717, 0x2718),  # ✗ ✘
    (0x3000, 0x303F),  # CJK symbols and punctuation 、。〈〉《》「」【】〔〕
    (0xFEFF, 0xFEFF),  # BOM / zero-width no-break space
    (0xFF00, 0xFFEF),  # full-width and half-width forms
    (0xFFFD, 0xFFFD),  # replacement character
]
# Must be present in the result, or the build fails.
REQUIRED = "喆堃昇玥①⑳≥≤×·—…“”、。，：；！？（）【】《》％０９ＡＺ"

DROP_FEATURES = {
    "locl",  # JP/KR/TC glyph variants: +18 k glyphs
    "vert", "vrt2", "valt", "vkrn", "vpal", "vhal", "vchw", "vjmo",  # vertical
}
DROP_TABLES = ["VORG", "vhea", "vmtx", "BASE"]


def charset_codepoints(charset: str) -> set[int]:
    """All characters of the double-byte part of GBK or GB2312."""
    lead = range(0x81, 0xFF) if charset == "gbk" else range(0xA1, 0xFF)
    trail = range(0x40, 0xFF) if charset == "gbk" else range(0xA1, 0xFF)
    out = set()
    for b1 in lead:
        for b2 in trail:
            try:
                out.add(ord(bytes((b1, b2)).decode(charset)))
            except UnicodeDecodeError:
                pass
    return out


def wanted_codepoints(charset: str, extra_chars: str) -> set[int]:
    cps = charset_codepoints(charset)
    for lo, hi in EXTRA_RANGES:
        cps.update(range(lo, hi + 1))
    cps.update(ord(c) for c in extra_chars)
    cps.update(ord(c) for c in REQUIRED)
    return cps


def load_face(path: Path, weight: str, font_number: int | None) -> TTFont:
    """Open the Simplified Chinese face of a TTC (or a single OTF/TTF)."""
    if path.suffix.lower() not in (".ttc", ".otc"):
        return TTFont(path)
    if font_number is None:
        want = f"NotoSansCJKsc-{weight}"
        coll = TTCollection(path, lazy=True)
        names = [f["name"].getDebugName(6) for f in coll.fonts]
        if want not in names:
            sys.exit(f"{path}: no face named {want}; faces: {names}")
        font_number = names.index(want)
    return TTFont(path, fontNumber=font_number)


def subset_font(font: TTFont, unicodes: set[int]) -> None:
    opts = subset.Options()
    opts.hinting = False
    opts.notdef_outline = True
    opts.glyph_names = False
    opts.name_IDs = ["*"]  # rewritten by rename() below
    opts.name_languages = [0x0409]
    opts.layout_features = [f for f in opts.layout_features if f not in DROP_FEATURES]
    opts.drop_tables = list(opts.drop_tables) + DROP_TABLES
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=unicodes)
    sub.subset(font)


def cff_to_glyf(font: TTFont, max_err: float) -> None:
    """Replace CFF cubic outlines with TrueType quadratic glyf outlines."""
    assert "CFF " in font, "source font has no CFF table (already TrueType?)"
    order = font.getGlyphOrder()
    glyphset = font.getGlyphSet()
    glyf = newTable("glyf")
    glyf.glyphOrder = order
    glyf.glyphs = {}
    for name in order:
        pen = TTGlyphPen(None)
        # CFF contours run counter-clockwise, TrueType ones clockwise.
        glyphset[name].draw(Cu2QuPen(pen, max_err, reverse_direction=True))
        glyf.glyphs[name] = pen.glyph()
    font["loca"] = newTable("loca")
    font["glyf"] = glyf
    del font["CFF "]
    if "VORG" in font:
        del font["VORG"]
    glyf.compile(font)
    hmtx = font["hmtx"]
    for name, g in glyf.glyphs.items():  # left side bearing = xMin in glyf
        if hasattr(g, "xMin"):
            hmtx[name] = (hmtx[name][0], g.xMin)
    maxp = newTable("maxp")
    maxp.tableVersion = 0x00010000
    maxp.numGlyphs = len(order)
    maxp.maxZones = 1
    for attr in ("maxTwilightPoints", "maxStorage", "maxFunctionDefs",
                 "maxInstructionDefs", "maxStackElements",
                 "maxSizeOfInstructions", "maxComponentElements"):
        setattr(maxp, attr, 0)
    font["maxp"] = maxp  # point/contour maxima are recalculated on save
    post = font["post"]
    post.formatType = 3.0  # no glyph names
    post.extraNames, post.mapping = [], {}
    gasp = newTable("gasp")  # unhinted: smooth + grid-fit at all sizes
    gasp.version = 1
    gasp.gaspRange = {0xFFFF: 0x000F}
    font["gasp"] = gasp
    font.sfntVersion = "\x00\x01\x00\x00"


def rename(font: TTFont, weight: str, charset: str) -> None:
    name = font["name"]
    src_version = name.getDebugName(5) or ""
    version = src_version.split(";")[0] or "Version 1.000"  # "Version 2.004"
    ps_name = f"{PS_FAMILY}-{weight}"
    full = FAMILY if weight == "Regular" else f"{FAMILY} {weight}"
    src_full = name.getDebugName(4)
    for rec_id in (1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 21, 22, 25):
        name.removeNames(nameID=rec_id)
    name.setName(FAMILY, 1, 3, 1, 0x409)
    name.setName(weight, 2, 3, 1, 0x409)
    name.setName(f"{version[8:]};NONE;{ps_name}", 3, 3, 1, 0x409)
    name.setName(full, 4, 3, 1, 0x409)
    name.setName(f"{version}; kaohe {charset.upper()} subset, TrueType outlines", 5, 3, 1, 0x409)
    name.setName(ps_name, 6, 3, 1, 0x409)
    name.setName(
        f"Modified Version of {src_full} ({src_version}) for the kaohe "
        f"project: subset to {charset.upper()} + punctuation, CFF outlines "
        "converted to TrueType, renamed. Licensed under the SIL Open Font "
        "License 1.1.", 10, 3, 1, 0x409)
    os2 = font["OS/2"]
    os2.achVendID = "NONE"
    os2.usWeightClass = WEIGHTS[weight]
    bold = weight == "Bold"
    os2.fsSelection = (os2.fsSelection & ~0b1100001) | (0b100000 if bold else 0b1000000)
    font["head"].macStyle = 1 if bold else 0


def build_one(src: Path, weight: str, out_dir: Path, charset: str,
              extra_chars: str, max_err: float, font_number: int | None) -> Path:
    t0 = time.time()
    font = load_face(src, weight, font_number)
    src_cmap = font.getBestCmap()
    wanted = wanted_codepoints(charset, extra_chars)
    missing = sorted(cp for cp in wanted if cp not in src_cmap)
    subset_font(font, wanted)
    cff_to_glyf(font, max_err)
    rename(font, weight, charset)
    out = out_dir / f"{PS_FAMILY}-{weight}.ttf"
    out_dir.mkdir(parents=True, exist_ok=True)
    font.recalcTimestamp = False  # keep the source's head.modified: reproducible bytes
    font.save(out)

    check = TTFont(out)
    cmap = check.getBestCmap()
    absent = [c for c in REQUIRED if ord(c) not in cmap]
    if absent or "glyf" not in check or "CFF " in check or "fvar" in check:
        sys.exit(f"{out}: bad result, missing {absent!r}")
    gbk = charset_codepoints(charset)
    gbk_missing = sorted(chr(cp) for cp in gbk if cp not in cmap)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    print(f"{out}: {out.stat().st_size:,} bytes, "
          f"{check['maxp'].numGlyphs:,} glyphs, {len(cmap):,} code points, "
          f"{charset.upper()} chars missing {len(gbk_missing)} {''.join(gbk_missing)}, "
          f"{time.time() - t0:.0f} s\n  sha256 {digest}")
    skipped = [f"U+{cp:04X}" for cp in missing if cp not in gbk]
    if skipped:
        print(f"  extra code points not in source font, skipped: {len(skipped)}")
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--regular", type=Path, default=NOTO_DIR / "NotoSansCJK-Regular.ttc")
    ap.add_argument("--bold", type=Path, default=NOTO_DIR / "NotoSansCJK-Bold.ttc")
    ap.add_argument("--font-number", type=int, default=None,
                    help="face index in the TTC (default: find NotoSansCJKsc-<Weight>)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--charset", choices=("gbk", "gb2312"), default="gbk")
    ap.add_argument("--extra-chars", default="", help="additional characters to keep")
    ap.add_argument("--max-err", type=float, default=1.0,
                    help="cubic-to-quadratic tolerance in font units (UPM 1000)")
    ap.add_argument("--weights", nargs="+", choices=tuple(WEIGHTS), default=list(WEIGHTS))
    args = ap.parse_args(argv)
    for weight in args.weights:
        src = args.regular if weight == "Regular" else args.bold
        build_one(src, weight, args.out, args.charset, args.extra_chars,
                  args.max_err, args.font_number)


if __name__ == "__main__":
    main()
