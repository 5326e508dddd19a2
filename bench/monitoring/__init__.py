"""Parts of ``bench/bench_monitor.py``: the regression table, the scoring, the rendering."""
