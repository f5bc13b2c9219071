"""Text from data (task and intent names, paths) placed safely into Markdown.

``results.md`` shows task names in table cells and in inline code; a name holding ``|`` would
split a table row and a backtick would end a code span early. :func:`markdown_cell` escapes a
text for one table cell, :func:`markdown_code` makes it an inline code span. Both render as the
original text in GitHub-flavoured Markdown.

Example::

    >>> from l2l_taskmix.markdown import markdown_cell, markdown_code
    >>> "| " + markdown_cell("billing|fr") + " |"
    '| billing\\\\|fr |'
    >>> markdown_code("a`b")
    '``a`b``'
"""

from __future__ import annotations

import re
import string

__all__ = ["markdown_cell", "markdown_code"]

# A backslash before ASCII punctuation would escape it; doubled, it shows as itself.
_ESCAPING_BACKSLASH = re.compile(r"\\(?=[" + re.escape(string.punctuation) + "])")


def _one_line(text: str, joiner: str) -> str:
    return joiner.join(str(text).splitlines())


def markdown_cell(text: object, code: bool = False) -> str:
    """``text`` as the content of one Markdown table cell: ``|`` becomes ``\\|``, line breaks
    become ``<br>``, and a backslash that would escape the next character is doubled, so the
    cell renders as the original text. ``code=True``: an inline code span
    (:func:`markdown_code`) that is safe in a cell.

    Example::

        >>> print(markdown_cell("a|b"))
        a\\|b
        >>> print(markdown_cell("two\\nlines"))
        two<br>lines
        >>> print(markdown_cell("C:\\\\data\\\\|x"))
        C:\\data\\\\\\|x
        >>> print(markdown_cell("a|b", code=True))
        `a\\|b`
    """
    if code:
        return markdown_code(_one_line(text, " ")).replace("|", "\\|")
    return _ESCAPING_BACKSLASH.sub(r"\\\\", _one_line(text, "<br>")).replace("|", "\\|")


def markdown_code(text: object) -> str:
    """``text`` as an inline code span: fenced by one backtick more than its longest run of
    backticks, padded with a space where it starts or ends with a backtick or a space (which
    Markdown then strips), line breaks as spaces. Outside a table only; in a cell use
    ``markdown_cell(text, code=True)``.

    Example::

        >>> print(markdown_code("alarm/de"))
        `alarm/de`
        >>> print(markdown_code("``x"))
        ``` ``x ```
    """
    text = _one_line(text, " ")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    if text[:1] in ("`", " ") or text[-1:] in ("`", " "):
        text = f" {text} "
    return f"{fence}{text}{fence}"
