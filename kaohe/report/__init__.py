"""PDF publication: the bulletin (考核结果通报), scorecards (成绩单) and feedback (退回意见).

The public API is in ``kaohe.report.render``: ``BulletinSettings``,
``render_bulletin``, ``render_scorecard``, ``render_feedback`` and
``render_run``. WeasyPrint is imported on first render, not on import.
"""
