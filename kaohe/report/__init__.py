"""PDF publication: the bulletin (考核结果通报), scorecards (成绩单) and feedback (退回意见),
and the office's internal report (内部工作材料: watch list, grade stability, indicator diagnostics).

The public API is in ``kaohe.report.render``: ``BulletinSettings``,
``render_bulletin``, ``render_scorecard``, ``render_feedback``,
``render_office_report``, ``write_diagnostics_xlsx`` and ``render_run``.
WeasyPrint is imported on first render, not on import.
"""
