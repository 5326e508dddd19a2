"""The Jinja environments every page and report renders with.

:func:`html_environment` loads a package's own ``templates`` folder first, then this
package's: the base layout ``layout.html.j2`` (blocks ``title``, ``styles``, ``nav``,
``header`` and ``content``) and the shared style sheet ``styles.css`` it inlines. HTML
is autoescaped and undefined names are errors. :func:`text_environment` is the same for
plain text and Markdown (no escaping; trailing newlines kept). Both carry the value
formats of :mod:`loopml.render.format` as filters: ``num``, ``fixed``, ``pct``,
``count``, ``time``, ``text`` and ``md``.

>>> page = html_environment("loopml.render").from_string(
...     '{% extends "layout.html.j2" %}{% block content %}<p>{{ x | pct }}</p>{% endblock %}'
... ).render(title="<Demo>", meta="", x=0.25)
>>> "<title>&lt;Demo&gt;</title>" in page, "<p>25%</p>" in page, "<style>" in page
(True, True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import jinja2

from loopml.render.format import (
    escape_markdown,
    fmt_fixed,
    fmt_int,
    fmt_num,
    fmt_pct,
    fmt_time,
    text,
)

__all__ = ["FILTERS", "html_environment", "text_environment"]

FILTERS: dict[str, Callable[..., str]] = {
    "num": fmt_num,
    "fixed": fmt_fixed,
    "pct": fmt_pct,
    "count": fmt_int,
    "time": fmt_time,
    "text": text,
    "md": escape_markdown,
}


@cache
def html_environment(package: str) -> jinja2.Environment:
    """HTML templates of ``package`` (its ``templates`` folder) over the shared layout."""
    return _environment(package, autoescape=True, trim_blocks=True, lstrip_blocks=True)


@cache
def text_environment(package: str) -> jinja2.Environment:
    """Plain text or Markdown templates of ``package``: nothing escaped, nothing trimmed."""
    return _environment(package, autoescape=False, keep_trailing_newline=True)


def _environment(package: str, **options: Any) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.PackageLoader("loopml.render", "templates")]
    if package != "loopml.render":
        loaders.insert(0, jinja2.PackageLoader(package, "templates"))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders), undefined=jinja2.StrictUndefined, **options
    )
    env.filters.update(FILTERS)
    return env
