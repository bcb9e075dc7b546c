"""The ``kaohe`` command: templates, validate, sample, run.

Messages for the office are Chinese. Exit codes: 0 done / clean, 1 problems
found in units' workbooks (validate), 2 an office input is wrong (catalog,
registry, review sheet, components, arguments).
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path

from kaohe.errors import KaoheError

DEFAULT_YEAR = 2025


def _year_default() -> int:
    return DEFAULT_YEAR


def _catalog_and_registry(args):
    from kaohe.catalog import load_catalog
    from kaohe.paths import bundled
    from kaohe.registry import load_registry

    b = bundled(args.year)
    catalog = load_catalog(args.catalog or b.catalog)
    registry = load_registry(args.registry or b.registry, catalog)
    return catalog, registry


def cmd_templates(args) -> int:
    from kaohe.template import template_filename, write_templates

    catalog, registry = _catalog_and_registry(args)
    out = Path(args.out)
    clash = [template_filename(u, catalog.year) for u in registry if (out / template_filename(u, catalog.year)).exists()]
    if clash and not args.force:
        print(f"输出目录 {out} 中已有 {len(clash)} 份同名自评表(如 {clash[0]}),未覆盖。如需重新生成请加 --force。", file=sys.stderr)
        return 2
    paths = write_templates(catalog, registry, out)
    print(f"已生成 {len(paths)} 份自评表模板 → {out}")
    return 0


def cmd_validate(args) -> int:
    from kaohe.outputs import write_feedback_xlsx
    from kaohe.pipeline import display_names, parse_stage, read_stage, validate_stage

    catalog, registry = _catalog_and_registry(args)
    listed = []
    for f in args.files:
        p = Path(f)
        listed.extend(sorted(x for x in p.iterdir() if x.is_file()) if p.is_dir() else [p])
    missing = [str(p) for p in listed if not p.is_file()]
    if missing:
        print("找不到文件: " + "、".join(missing), file=sys.stderr)
        return 2
    files, seen = [], set()
    for p in listed:  # a file listed twice (by itself and in its folder, say) is checked once
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            files.append(p)
    if len(files) < len(listed):
        print(f"有 {len(listed) - len(files)} 个文件被重复列出,每个文件只校验一次。")
    # files from several folders may share a name: each is then called by its folder too
    reads = read_stage(files, catalog, registry, names=display_names(files))
    intake = validate_stage(reads, parse_stage(reads, catalog, registry), catalog, registry)
    n_bad = 0
    for r in reads:
        problems = intake.problems.get(r.file, [])
        unit = registry.get(intake.file_unit.get(r.file, "")) if intake.file_unit.get(r.file) else None
        label = f"{unit.unit_name}({unit.unit_id})" if unit else "未能识别单位"
        if not problems:
            if not args.quiet:
                print(f"✓ {r.file}:{label},校验通过")
            continue
        n_bad += 1
        print(f"✗ {r.file}:{label},发现 {len(problems)} 处问题")
        for p in problems:
            print(f"  {p.render()}")
        if args.feedback:
            fb = Path(args.feedback)
            fb.mkdir(parents=True, exist_ok=True)
            target = fb / f"{Path(r.file).with_suffix('').as_posix().replace('/', '_')}_退回意见.xlsx"
            write_feedback_xlsx(target, r.file, label, problems, catalog)
    print(f"共 {len(reads)} 份,通过 {len(reads) - n_bad} 份,有问题 {n_bad} 份。")
    return 1 if n_bad else 0


def cmd_sample(args) -> int:
    from kaohe.sample import generate

    catalog, registry = _catalog_and_registry(args)
    out = Path(args.out)
    if (out / "submissions").exists() and any((out / "submissions").iterdir()) and not args.force:
        print(f"{out / 'submissions'} 不为空,未覆盖。如需重新生成请加 --force。", file=sys.stderr)
        return 2
    reg, planted = generate(
        catalog, registry, out, units=args.units, seed=args.seed,
        with_mistakes=args.with_mistakes or args.mistakes is not None, mistakes=args.mistakes, missing=args.missing,
    )
    print(f"已生成 {len(reg) - args.missing} 份填报样例(共 {len(reg)} 个单位)→ {out}")
    if planted:
        print(f"植入错误 {len(planted)} 处,清单见 {out / 'planted.csv'}")
    return 0


def cmd_run(args) -> int:
    from kaohe.pipeline import environment_defaults
    from kaohe import progress as PG

    if args.quiet:
        os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"  # before Prefect is imported
    environment_defaults()
    from kaohe.flows.year_end import year_end

    PG.use(PG.Progress(quiet=args.quiet))
    flow = year_end
    if args.dask:
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            print("使用 --dask 需要先安装 prefect-dask:pip install -e \".[dask]\"", file=sys.stderr)
            return 2
        flow = year_end.with_options(task_runner=DaskTaskRunner(address=args.dask))
    else:
        from kaohe.isolation import start_fork_server

        start_fork_server()  # the readers' fork server starts while Prefect starts its server
    run = flow(
        year=args.year,
        catalog=args.catalog,
        registry=args.registry,
        submissions=args.submissions,
        review=args.review,
        components=args.components,
        out=args.out,
        draws=args.draws,
        seed=args.seed,
        previous=args.previous,
        doc_number=args.doc_number or "",
        issue_date=args.issue_date or "",
        issuer=args.issuer or "",
        render=not args.no_pdf,
        cache=not args.no_cache,
        dask=args.dask,
    )
    if args.quiet:
        print(run)
    else:
        _summary(Path(run))
    return 0


def _db_url(args, out_root: Path) -> str:
    from kaohe.archive import resolve_url

    return resolve_url(out_root, args.db)


def cmd_publish(args) -> int:
    from kaohe import archive

    run = Path(args.run).resolve()
    engine = archive.connect(_db_url(args, run.parent.parent))
    pub = archive.publish(engine, run, supersede=args.supersede, reason=args.reason or "", publisher=args.publisher or "")
    verb = f"替代运行 {pub.supersedes_run_id} " if pub.supersedes_run_id else ""
    print(f"已发布 {pub.year} 年度考核结果:运行 {pub.run_id}({verb}{pub.published_at},理由:{pub.reason})")
    return 0


def cmd_history(args) -> int:
    import json

    from kaohe import archive

    out = Path(args.out)
    engine = archive.connect(_db_url(args, out))
    pubs = archive.history(engine, args.year)
    published = {p.run_id for p in pubs}
    cur = pubs[-1].run_id if pubs else None
    runs = sorted((out / str(args.year)).glob("*/manifest.json"))
    print(f"{args.year} 年度运行记录({len(runs)} 次):")
    for m_path in runs:
        m = json.loads(m_path.read_text(encoding="utf-8"))
        mark = "★ 现行发布" if m["run_id"] == cur else ("已被替代" if m["run_id"] in published else "")
        u = m["units"]
        print(f"  {m['run_id']}  计分 {u['scored']} / 未通过校验 {u['rejected']} / 未报送 {u['missing']}  {m['code_version']}  {mark}")
    print(f"{args.year} 年度发布记录({len(pubs)} 次):")
    for p in pubs:
        sup = f",替代 {p.supersedes_run_id}" if p.supersedes_run_id else ""
        print(f"  {p.published_at}  运行 {p.run_id}{sup}  理由:{p.reason}  发布人:{p.publisher or '—'}")
    return 0


def cmd_serve(args) -> int:
    from kaohe.pipeline import environment_defaults

    environment_defaults()
    if not os.environ.get("PREFECT_API_URL"):
        print(
            "kaohe serve 需要一个常驻的 Prefect 服务器:先运行 `prefect server start`,"
            "再设置 PREFECT_API_URL=http://127.0.0.1:4200/api(见 README)。",
            file=sys.stderr,
        )
        return 2
    from prefect import serve

    from kaohe.flows.year_end import deployment

    serve(deployment(year=args.year, out=args.out))
    return 0


def _summary(run: Path) -> None:
    import json

    m = json.loads((run / "manifest.json").read_text(encoding="utf-8"))
    u = m["units"]
    s = m["file_states"]
    print(f"{m['year']} 年度考核计分完成 → {run}")
    print(f"  单位:已计分 {u['scored']},未通过校验 {u['rejected']},未报送 {u['missing']}")
    print(
        f"  文件:计分 {s['scored']},退回 {s['rejected']},重复 {s['duplicate']},"
        f"名录外单位 {s['unknown_unit']},非工作簿 {s['not_a_workbook']}"
    )
    print(f"  审核意见:{m['review']['rows']} 行,修改 {m['review']['changed_values']} 个数值")
    print("  输出:" + "、".join(o for o in m["outputs"] if "/" not in o))
    n_cards = sum(1 for o in m["outputs"] if o.startswith("scorecards/"))
    n_fb = sum(1 for o in m["outputs"] if o.startswith("feedback/") and o.endswith(".pdf"))
    if n_cards or n_fb:
        print(f"  记分卡 {n_cards} 份,退回意见 {n_fb} 份")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kaohe", description="依法行政考核:指标体系、自评表、校验、计分与通报")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, registry=True):
        sp.add_argument("--year", type=int, default=_year_default(), help="考核年度(默认 %(default)s)")
        sp.add_argument("--catalog", help="指标体系 YAML(默认:该年度的内置指标体系)")
        if registry:
            sp.add_argument("--registry", help="考核对象名录 CSV/XLSX(默认:该年度的内置名录)")

    t = sub.add_parser("templates", help="为每个单位生成自评表模板")
    common(t)
    t.add_argument("--out", required=True, help="输出目录")
    t.add_argument("--force", action="store_true", help="覆盖已有的同名模板")
    t.set_defaults(func=cmd_templates)

    v = sub.add_parser("validate", help="校验报送的自评表")
    common(v)
    v.add_argument("files", nargs="+", help="自评表文件或目录")
    v.add_argument("--feedback", help="为有问题的文件生成退回意见工作簿的目录")
    v.add_argument("--quiet", action="store_true", help="只列出有问题的文件")
    v.set_defaults(func=cmd_validate)

    s = sub.add_parser("sample", help="生成填报样例(演示、测试与基准)")
    common(s)
    s.add_argument("--out", required=True)
    s.add_argument("--units", type=int, help="单位数(默认:名录中的全部单位)")
    s.add_argument("--seed", type=int, default=date.today().year)
    s.add_argument("--with-mistakes", action="store_true", help="植入常见填报错误,清单写入 planted.csv")
    s.add_argument("--mistakes", type=int, help="只植入前 N 种错误(隐含 --with-mistakes)")
    s.add_argument("--missing", type=int, default=0, help="最后 N 个单位不报送")
    s.add_argument("--force", action="store_true")
    s.set_defaults(func=cmd_sample)

    r = sub.add_parser("run", help="年终计分:读取、校验、审核、计分、排名,写入新的运行目录")
    common(r)
    r.add_argument("--submissions", help="自评表目录(默认:该年度的内置报送材料)")
    r.add_argument("--review", help="审核意见表 CSV/XLSX")
    r.add_argument("--components", help="其他考核分项得分表 CSV/XLSX(unit_id, component, score)")
    r.add_argument("--out", default="outputs", help="输出根目录(默认 outputs/)")
    r.add_argument("--draws", type=int, default=1000, help="排名稳健性模拟次数(默认 1000)")
    r.add_argument("--seed", type=int, default=2025, help="排名稳健性模拟的随机种子")
    r.add_argument("--previous", help="上年度已发布结果 results.csv(默认:结果库中上年度的现行发布)")
    r.add_argument("--doc-number", help="通报文号,如 示法考〔2026〕1号")
    r.add_argument("--issue-date", help="通报日期,如 2026年1月15日(默认:今天)")
    r.add_argument("--issuer", help="发文机关(默认:指标体系中的 issuer)")
    r.add_argument("--no-pdf", action="store_true", help="不生成 PDF 通报与记分卡")
    r.add_argument("--no-cache", action="store_true", help="不使用 <out>/.cache 中未变化文件的读取结果和 PDF(全部重新读取、排版)")
    r.add_argument("--dask", metavar="ADDRESS", help="在已有的 Dask 集群上运行逐单位的读取与排版,如 tcp://10.0.0.5:8786(需 pip install -e \".[dask]\")")
    r.add_argument("--quiet", action="store_true", help="不显示进度和摘要,只输出新运行目录的路径(供脚本使用)")
    r.set_defaults(func=cmd_run)
    sv = sub.add_parser("serve", help="把年终计分流程注册为 Prefect 部署,供在 Prefect 界面中触发")
    sv.add_argument("--year", type=int, default=_year_default())
    sv.add_argument("--out", default="outputs")
    sv.set_defaults(func=cmd_serve)

    pb = sub.add_parser("publish", help="将一次运行发布为该年度的正式考核结果")
    pb.add_argument("run", help="运行目录 outputs/<年度>/<运行编号>")
    pb.add_argument("--supersede", action="store_true", help="替代该年度已发布的结果(须同时给出 --reason)")
    pb.add_argument("--reason", help="发布或替代的理由")
    pb.add_argument("--publisher", help="发布人")
    pb.add_argument("--db", help="结果库 URL(默认:运行目录所在输出根目录下的 kaohe.sqlite;也可设 KAOHE_DB)")
    pb.set_defaults(func=cmd_publish)

    h = sub.add_parser("history", help="列出某年度的运行与发布记录")
    h.add_argument("--year", type=int, default=_year_default())
    h.add_argument("--out", default="outputs", help="输出根目录(默认 outputs/)")
    h.add_argument("--db", help="结果库 URL(默认:--out 下的 kaohe.sqlite;也可设 KAOHE_DB)")
    h.set_defaults(func=cmd_history)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KaoheError as exc:
        print(exc.render(), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
