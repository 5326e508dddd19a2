"""Rendering HTML pages and reports: one environment, one layout, one style, one number format.

The training report, the monitoring report and the dashboard all extend the base layout
``templates/layout.html.j2`` with the shared ``templates/styles.css``, and write values
through :mod:`loopml.render.format`. Nothing here knows a stage: it sits at the base of
the staircase, beside ``errors`` and ``files``.
"""
