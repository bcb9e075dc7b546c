"""What the bulletin and the office report read of the results: a slim copy to send to a worker.

The bulletin (``context.bulletin_context``) and the office report (``office.office_context``) are
laid out in worker processes, which receive the results pickled. Most of a ``UnitResult`` is its
item results (``items``: the cells each item came from, the unit's evidence, the rules'
explanations: about 97 % of its pickled size), which neither document shows. They read, per unit:

- the unit (id, name, group), ``status``, ``rank``, ``grade``, ``grade_note``, ``veto``, ``final``,
  ``rates``, ``problems`` (how many, for a rejected unit), and, through ``outputs.result_row``,
  ``file``, ``assessed``, ``weighted``, ``bonus``, ``components`` and ``robustness``;
- the items of a failing unit only (scored, graded 不合格): which items vetoed it (their titles,
  ``context.fail_reason``) and the points it lost (``context.lost_points``: applicability, points
  and score of each item).

``document_results`` keeps exactly that: every unit's own fields, and for a failing unit its items
reduced to (item, applicability, score, veto); every other unit gets no items. Rendered from the
slim copy, both documents are the same as from the full results (``tests/test_report_speed.py``).
"""

from __future__ import annotations

from dataclasses import replace

from kaohe.scoring import ItemResult, UnitResult


def _reads_items(r: UnitResult) -> bool:
    """Whether the bulletin reads this unit's items: a scored unit graded 不合格 (its reason and lost points)."""
    return r.status == "scored" and r.grade == "不合格"


def _slim_item(ir: ItemResult) -> ItemResult:
    """An item result with only what ``fail_reason`` and ``lost_points`` read."""
    return ItemResult(ir.item, ir.applicable, score=ir.score, veto=ir.veto)


def document_results(results: list[UnitResult]) -> list[UnitResult]:
    """A slim copy of ``results`` for ``render.render_bulletin`` and ``render.render_office_report``
    (in the same order): the documents built from it are the same as from ``results``, for a
    fraction of the pickled size. The copies share the originals' unit, rates and components
    (neither is changed by rendering)."""
    return [replace(r, items=tuple(_slim_item(ir) for ir in r.items) if _reads_items(r) else ()) for r in results]


__all__ = ["document_results"]
