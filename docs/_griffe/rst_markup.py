"""A griffe extension for the API pages: the package's docstrings are written in
reStructuredText's habits, which Markdown does not know. Before mkdocstrings renders them,

- a Sphinx role (``:class:`Task```, ``:func:`~l2l_taskmix.mixing.mix```) becomes a code span
  (`` `Task` ``, `` `mix` ``: a ``~`` keeps the last dotted part, as Sphinx shows it);
- a paragraph ending in ``::`` (reST's "a literal block follows") ends in ``:``, and a
  ``::`` alone on its line goes; the indented block after it is a Markdown code block already.

Nothing else changes: double-backtick literals are Markdown code spans as they are, and
``>>>`` examples stay in their code blocks. Loaded from ``mkdocs.yml``; not part of the package.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r"(?<![\w`]):(?:py:)?(?:func|class|meth|mod|attr|data|exc|obj|const):`([^`]+)`")
LITERAL_MARKER = re.compile(r"(?m)(\S)::[ \t]*$")
LONE_MARKER = re.compile(r"(?m)^([ \t]*)::[ \t]*$|[ \t]+::[ \t]*$")


def _role(match: re.Match) -> str:
    target = match.group(1).strip()
    title = re.fullmatch(r"(.*?)\s*<(.+)>", target)  # :func:`title <target>`
    if title:
        return f"`{title.group(1)}`"
    if target.startswith("~"):
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target}`"


def convert(text: str) -> str:
    """The docstring ``text`` with reST roles and literal-block markers made Markdown."""
    text = ROLE.sub(_role, text)
    text = LONE_MARKER.sub("", text)
    return LITERAL_MARKER.sub(r"\1:", text)


class RstMarkup(griffe.Extension):
    """Rewrites every docstring with :func:`convert` as griffe loads it."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)
