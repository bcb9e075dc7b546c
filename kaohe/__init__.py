"""kaohe: the 依法行政 assessment pipeline (read → parse → validate → score → rank → render)."""

__version__ = "0.1.0"
