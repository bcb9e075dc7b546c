"""Validation: every rule with a failing case, each reported with its cell; planted mistakes exactly."""

import csv
from pathlib import Path

import pytest

from helpers import DATA, GOLDEN, values_by_unit, write_submissions
from kaohe import pipeline as P
from kaohe.cli import main
from kaohe.errors import Code
from kaohe.registry import load_registry
from kaohe.sample import MISTAKES, generate



@pytest.fixture(scope="module")
def clean_values():
    return values_by_unit(GOLDEN / "values.csv")


def problems_for(mini_catalog, registry, tmp_path, unit_id, values):
    files = write_submissions(mini_catalog, registry, {unit_id: values}, tmp_path)
    reads = P.read_stage(files, mini_catalog, registry)
    intake = P.validate_stage(reads, P.parse_stage(reads, mini_catalog, registry), mini_catalog, registry)
    return [p for ps in intake.problems.values() for p in ps], intake


def cell_of(mini_catalog, registry, unit_id, item_id, key):
    from kaohe.layout import layout

    lay = layout(mini_catalog, registry.get(unit_id))
    block = next(b for b in lay.blocks if b.item_id == item_id)
    return next(a for k, _, a in block.inputs() if k == key)


def test_clean_submission_has_no_problems(mini_catalog, registry, clean_values, tmp_path):
    problems, intake = problems_for(mini_catalog, registry, tmp_path, "QX02", clean_values["QX02"])
    assert problems == []
    assert list(intake.file_state.values()) == ["scored"]


CASES = [
    # (name, edit of QX02's values, expected code, item, key)
    ("required", lambda v: v.pop(("A03", "lectures")), Code.REQUIRED, "A03", "lectures"),
    ("below_min", lambda v: v.update({("A03", "lectures"): -1}), Code.BELOW_MIN, "A03", "lectures"),
    ("above_max", lambda v: v.update({("A03", "lectures"): 101}), Code.ABOVE_MAX, "A03", "lectures"),
    ("percent_over_100", lambda v: v.update({("B03", "rate"): "120%"}), Code.ABOVE_MAX, "B03", "rate"),
    ("n_gt_d", lambda v: v.update({("A02", "reviewed"): 10}), Code.NUMERATOR_GT_DENOMINATOR, "A02", "reviewed"),
    ("evidence", lambda v: v.pop(("A01", "__evidence")), Code.EVIDENCE_REQUIRED, "A01", "__evidence"),
    ("na_without_reason", lambda v: [v.pop(("A02", k)) for k in ("reviewed", "total")] and v.update({("A02", "__na"): "是"}), Code.NA_REASON_REQUIRED, "A02", "__na_reason"),
    ("na_with_values", lambda v: v.update({("A02", "__na"): "是", ("A02", "__na_reason"): "无"}), Code.NA_WITH_VALUES, "A02", "__na"),
    ("text_in_number", lambda v: v.update({("A03", "lectures"): "两次"}), Code.NOT_A_NUMBER, "A03", "lectures"),
    ("not_integer", lambda v: v.update({("A03", "lectures"): 1.5}), Code.NOT_AN_INTEGER, "A03", "lectures"),
    ("ambiguous_percent", lambda v: v.update({("B03", "rate"): 0.95}), Code.PERCENT_AMBIGUOUS, "B03", "rate"),
    ("not_a_choice", lambda v: v.update({("A01", "reported"): "已报告"}), Code.NOT_A_CHOICE, "A01", "reported"),
    ("grade_not_a_choice", lambda v: v.update({("B02", "level"): "优"}), Code.NOT_A_CHOICE, "B02", "level"),
    ("formula", lambda v: v.update({("A03", "lectures"): "=1+1"}), Code.FORMULA, "A03", "lectures"),
]


@pytest.mark.parametrize("name,edit,code,item_id,key", CASES, ids=[c[0] for c in CASES])
def test_each_rule_reports_its_cell(mini_catalog, registry, clean_values, tmp_path, name, edit, code, item_id, key):
    values = dict(clean_values["QX02"])
    edit(values)
    problems, intake = problems_for(mini_catalog, registry, tmp_path, "QX02", values)
    assert [(p.code, p.cell) for p in problems] == [(code, cell_of(mini_catalog, registry, "QX02", item_id, key))]
    (p,) = problems
    assert p.sheet == "自评表" and p.file.endswith(".xlsx") and p.expected
    assert all("\u4e00" <= ch <= "\u9fff" for ch in p.message if ch.isalpha() and not ch.isascii())
    assert list(intake.file_state.values()) == ["rejected"]


def test_bool_and_date_cells_rejected(mini_catalog, registry, clean_values, tmp_path):
    import datetime as dt

    values = dict(clean_values["QX02"])
    values[("A03", "lectures")] = True
    values[("A02", "total")] = dt.datetime(2025, 3, 1)
    problems, _ = problems_for(mini_catalog, registry, tmp_path, "QX02", values)
    assert sorted(p.code for p in problems) == sorted([Code.BOOL_CELL, Code.DATE_CELL])


def test_all_problems_at_once(mini_catalog, registry, clean_values, tmp_path):
    values = dict(clean_values["QX02"])
    values[("A03", "lectures")] = "两次"
    values[("A02", "reviewed")] = 10
    values.pop(("A01", "__evidence"))
    problems, _ = problems_for(mini_catalog, registry, tmp_path, "QX02", values)
    assert {p.code for p in problems} == {Code.NOT_A_NUMBER, Code.NUMERATOR_GT_DENOMINATOR, Code.EVIDENCE_REQUIRED}


def test_two_files_for_one_unit_both_reported(mini_catalog, registry, clean_values, tmp_path):
    files = write_submissions(mini_catalog, registry, {"QX02": clean_values["QX02"]}, tmp_path)
    copy = tmp_path / "QX02_副本.xlsx"
    copy.write_bytes(files[0].read_bytes())
    reads = P.read_stage(sorted(tmp_path.glob("*.xlsx")), mini_catalog, registry)
    intake = P.validate_stage(reads, P.parse_stage(reads, mini_catalog, registry), mini_catalog, registry)
    assert sorted(intake.file_state.values()) == ["duplicate", "duplicate"]
    assert "QX02" not in intake.valid and "QX02" in intake.rejected_units


def test_wrong_year_unknown_unit_and_not_a_workbook(mini_catalog, registry, clean_values, tmp_path):
    from kaohe.registry import Registry, Unit

    stranger = Unit("XX99", "外市某局", "市直综合部门", frozenset())
    other_reg = Registry(registry.units + (stranger,))
    write_submissions(mini_catalog, other_reg, {"XX99": {}}, tmp_path)
    (tmp_path / "notes.xlsx").write_text("unit_id,score\nQX01,99\n", encoding="utf-8")
    (tmp_path / "old.xlsx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 100)
    reads = P.read_stage(sorted(tmp_path.iterdir()), mini_catalog, registry)
    intake = P.validate_stage(reads, P.parse_stage(reads, mini_catalog, registry), mini_catalog, registry)
    states = {f: s for f, s in intake.file_state.items()}
    assert states["notes.xlsx"] == "not_a_workbook"
    assert states["old.xlsx"] == "not_a_workbook"
    assert [s for f, s in states.items() if f.startswith("XX99")] == ["unknown_unit"]
    msgs = {f: intake.problems[f][0].message for f in states}
    assert "CSV" in msgs["notes.xlsx"] and "加密" in msgs["old.xlsx"]


def test_generated_submissions_report_exactly_the_planted_mistakes(mini_catalog, tmp_path, capsys):
    base = load_registry(GOLDEN / "registry.csv", mini_catalog)
    registry, planted = generate(mini_catalog, base, tmp_path, seed=7, with_mistakes=True)
    assert sorted(p.kind for p in planted) == sorted(MISTAKES)
    reg_path = tmp_path / "registry.csv"
    fb = tmp_path / "feedback"
    code = main(["validate", "--catalog", str(DATA / "mini_catalog.yaml"), "--registry", str(reg_path), "--feedback", str(fb), str(tmp_path / "submissions")])
    out = capsys.readouterr().out
    assert code == 1
    reads = P.read_stage(sorted((tmp_path / "submissions").iterdir()), mini_catalog, registry)
    intake = P.validate_stage(reads, P.parse_stage(reads, mini_catalog, registry), mini_catalog, registry)
    found = {(f, p.code.value, p.cell) for f, ps in intake.problems.items() for p in ps}
    with (tmp_path / "planted.csv").open(encoding="utf-8-sig") as fh:
        expected = {(r["file"], r["code"], r["cell"]) for r in csv.DictReader(fh)}
    assert found == expected
    for f, _, cell in expected:
        assert f in out and (not cell or cell in out)
    assert len(list(fb.glob("*.xlsx"))) == len(expected)
    # clean ones pass
    assert out.count("校验通过") == len(registry) - len(expected)


def test_validate_exit_zero_when_clean(mini_catalog, tmp_path, capsys):
    base = load_registry(GOLDEN / "registry.csv", mini_catalog)
    generate(mini_catalog, base, tmp_path, seed=11)
    code = main(["validate", "--catalog", str(DATA / "mini_catalog.yaml"), "--registry", str(tmp_path / "registry.csv"), str(tmp_path / "submissions")])
    assert code == 0, capsys.readouterr().out


def test_validation_prepared_in_a_thread_changes_nothing(mini_catalog, registry, clean_values, tmp_path, monkeypatch):
    """ingest_stage starts paying pandera's first-use costs in a thread; validate_stage waits for
    it. Prepared, not prepared, or a preparation that failed: the same problems."""
    from kaohe.schemas import validation as V

    bad = dict(clean_values["QX02"])
    key = next(k for k, v in bad.items() if str(v).isdigit())
    bad[key] = "很多"
    files = write_submissions(mini_catalog, registry, {"QX02": bad, "QX01": clean_values["QX01"]}, tmp_path)

    def run(prepare):
        V._SCHEMAS.clear()  # each run builds its own schema: none poisons the next
        monkeypatch.setattr(P, "_PREPARING", {})
        if prepare is None:
            monkeypatch.setattr(P, "prepare_validation", lambda _catalog: None)
        else:
            monkeypatch.setattr(V, "prepare", prepare)
        reads = P.ingest_stage(files, mini_catalog, registry, isolate=False)  # starts the thread
        intake = P.validate_stage(reads, P.parse_stage(reads, mini_catalog, registry), mini_catalog, registry)
        assert not P._PREPARING  # waited for and dropped
        monkeypatch.undo()
        return {f: [(p.code, p.cell, p.message) for p in ps] for f, ps in intake.problems.items()}

    def broken(_catalog):
        raise RuntimeError("preparation failed")

    plain = run(None)  # no preparation at all: the baseline
    assert plain == run(V.prepare) == run(broken) and any(plain.values())


@pytest.mark.parametrize(
    "identity, expected",
    [
        ({"filler": "张三", "phone": "0812-1234567"}, []),
        ({"filler": "", "phone": ""}, []),  # both may be left empty
        ({"filler": "张三", "phone": "(0812) 123 4567转8"}, []),
        ({"filler": "张三", "phone": "一二三四五六"}, [(Code.NOT_A_NUMBER, "F3", "联系电话")]),
        ({"filler": "张三", "phone": "123"}, [(Code.NOT_A_NUMBER, "F3", "联系电话")]),
        ({"filler": "张" * 50, "phone": ""}, []),
        ({"filler": "张" * 51, "phone": "abc"}, [(Code.TEXT_TOO_LONG, "B3", "填报人"), (Code.NOT_A_NUMBER, "F3", "联系电话")]),
    ],
)
def test_identity_cells(identity, expected):
    """The contact cells (填报人 B3, 联系电话 F3) against the fixed-column schema, one row per file."""
    from kaohe.schemas.validation import identity_problems
    from kaohe.submission import Submission

    subs = [Submission("QX01", "a.xlsx", "0" * 64, identity={"filler": "李四", "phone": "0812-7654321"}), Submission("QX02", "b.xlsx", "1" * 64, identity=identity)]
    found = identity_problems(subs)
    assert found["a.xlsx"] == []
    got = sorted((p.code, p.cell, p.field) for p in found["b.xlsx"])
    assert got == sorted(expected)
    assert all(p.file == "b.xlsx" and p.sheet == "自评表" for p in found["b.xlsx"])


def test_validate_files_of_one_name_from_two_folders(mini_catalog, registry, clean_values, tmp_path, capsys):
    """`kaohe validate A/x.xlsx B/x.xlsx`: two files, each known by its folder too, neither taken
    for the other; as two files of one unit both are duplicates; each gets its own 退回意见; a
    file listed twice (by itself and in its folder) is checked once."""
    bad = dict(clean_values["QX02"])
    bad[("A03", "lectures")] = "两次"
    (a := tmp_path / "A").mkdir()
    (b := tmp_path / "B").mkdir()
    [fa] = write_submissions(mini_catalog, registry, {"QX02": bad}, a)
    [fb_] = write_submissions(mini_catalog, registry, {"QX02": clean_values["QX02"]}, b)
    assert fa.name == fb_.name
    reg_path = tmp_path / "registry.csv"
    reg_path.write_bytes((GOLDEN / "registry.csv").read_bytes())
    feedback = tmp_path / "feedback"
    code = main(["validate", "--catalog", str(DATA / "mini_catalog.yaml"), "--registry", str(reg_path), "--feedback", str(feedback), str(fa), str(b), str(fb_)])
    out = capsys.readouterr().out
    assert code == 1
    na, nb = f"A/{fa.name}", f"B/{fb_.name}"
    assert "重复列出" in out and out.count(f"✗ {na}") == 1 and out.count(f"✗ {nb}") == 1
    # the planted mistake is A's alone
    a_lines = out.split(f"✗ {na}")[1].split("✗")[0]
    b_lines = out.split(f"✗ {nb}")[1].split("共")[0]
    assert Code.NOT_A_NUMBER.value in a_lines and Code.NOT_A_NUMBER.value not in b_lines
    assert Code.DUPLICATE_UNIT.value in a_lines and Code.DUPLICATE_UNIT.value in b_lines
    assert sorted(p.name for p in feedback.iterdir()) == sorted(f"{n[:-5].replace('/', '_')}_退回意见.xlsx" for n in (na, nb))

    reads = P.read_stage([fa, fb_], mini_catalog, registry, names=P.display_names([fa, fb_]))
    intake = P.validate_stage(reads, P.parse_stage(reads, mini_catalog, registry), mini_catalog, registry)
    assert intake.file_state == {na: "duplicate", nb: "duplicate"}
    assert {p.file for ps in intake.problems.values() for p in ps} == {na, nb}
    assert all(p.file == na for p in intake.problems[na])


def test_display_names(tmp_path):
    paths = [tmp_path / "x" / "A" / "f.xlsx", tmp_path / "y" / "A" / "f.xlsx", tmp_path / "B" / "f.xlsx", tmp_path / "g.xlsx"]
    assert P.display_names(paths) == ["x/A/f.xlsx", "y/A/f.xlsx", "B/f.xlsx", "g.xlsx"]
    assert P.display_names(paths[2:]) == ["f.xlsx", "g.xlsx"]  # no clash: file names alone
    assert P.display_names([tmp_path / "f.xlsx", tmp_path / "g.xlsx"]) == ["f.xlsx", "g.xlsx"]
    with pytest.raises(ValueError):
        P.display_names([tmp_path / "f.xlsx", tmp_path / "f.xlsx"])


def _frame_column_by_column(subs, catalog, registry):
    """The submissions frame as it was first built, one Series per column: the reference."""
    import pandas as pd

    from kaohe.layout import EVIDENCE_KEY, NA_KEY, REASON_KEY
    from kaohe.schemas import validation as V

    index = pd.Index([s.file for s in subs], dtype=object)
    data = {}
    for item in catalog.items:
        applies = []
        for s in subs:
            unit = registry.get(s.unit_id)
            applies.append(item.id in {i.id for i in catalog.applicable_items(unit.group, unit.tags)})
        data[V.col(item.id, V.APPLIES)] = pd.Series(applies, index=index, dtype=bool)
        for key in [f.key for f in item.fields] + [NA_KEY, REASON_KEY, EVIDENCE_KEY]:
            data[V.col(item.id, key)] = pd.Series([s.value(item.id, key) for s in subs], index=index, dtype=object)
    return pd.DataFrame(data, index=index, columns=list(V.build_schema(catalog).columns))


def test_submissions_frame_is_the_column_by_column_frame(tmp_path):
    """The frame built in two blocks holds, cell for cell and type for type, what one Series per
    column holds: the bundled year (two groups, tags, 不适用, rejected cells) with planted mistakes."""
    import pandas as pd

    from kaohe.catalog import load_catalog
    from kaohe.paths import bundled
    from kaohe.schemas import validation as V

    b = bundled(2025)
    catalog = load_catalog(b.catalog)
    base = load_registry(b.registry, catalog)
    registry, planted = generate(catalog, base, tmp_path, seed=5, with_mistakes=True)
    files = sorted((tmp_path / "submissions").iterdir()) + sorted(b.submissions.iterdir())
    reads = P.read_stage(files, catalog, registry, isolate=False, names=P.display_names(files))
    subs = P.parse_stage(reads, catalog, registry)
    assert len(subs) > 60 and planted
    got, want = V.submissions_frame(subs, catalog, registry), _frame_column_by_column(subs, catalog, registry)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)
    for c in want.columns:  # the values themselves: Decimal stays Decimal, None stays None (never NaN)
        assert [type(v) for v in got[c]] == [type(v) for v in want[c]], c
    # with a unit whose entries come in another order, and one entry the catalog does not know
    s = subs[0]
    shuffled = {("ZZ99", "x"): next(iter(s.entries.values()))} | dict(reversed(list(s.entries.items())))
    odd = [type(s)(s.unit_id, "odd.xlsx", s.sha256, shuffled, s.identity, s.problems)] + subs[1:5]
    pd.testing.assert_frame_equal(V.submissions_frame(odd, catalog, registry), _frame_column_by_column(odd, catalog, registry), check_exact=True)


def test_validation_does_not_look_for_geopandas_on_every_column(mini_catalog, registry, clean_values, tmp_path):
    """pandera's pandas engine imports geopandas for every column's dtype; where it is not
    installed, kaohe answers that question once (schemas.validation._no_geopandas_probe)."""
    import importlib.util
    import sys

    if importlib.util.find_spec("geopandas") is not None:
        pytest.skip("geopandas is installed: pandera's own check stands")
    asked = []

    class Finder:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name.split(".")[0] == "geopandas":
                asked.append(name)
            return None

    paths = write_submissions(mini_catalog, registry, clean_values, tmp_path)
    reads = P.read_stage(paths, mini_catalog, registry, isolate=False)
    subs = P.parse_stage(reads, mini_catalog, registry)
    sys.meta_path.insert(0, Finder)
    try:
        intake = P.validate_stage(reads, subs, mini_catalog, registry)
    finally:
        sys.meta_path.remove(Finder)
    assert len(intake.file_state) == len(paths) and "scored" in intake.file_state.values()
    assert asked == []
