"""griffe extension: the docstrings are written for reading as plain text, with reST's roles and literal-block
markers; show them as Markdown.

* ``:class:`~bilevel_tf.BilevelProblem``` becomes ```BilevelProblem``` (the tilde keeps the last name);
* a paragraph ending in ``::`` ends in ``:`` (the indented block after it is already a Markdown code block);
* a star right after a name (``v*(u)``, ``||u - u*||``, ``dv*/du``) is a star, not the start of emphasis;
  ``*word*`` stays emphasis, and code is left alone.
"""

from __future__ import annotations

import re
from typing import Any, List

import griffe

ROLE = re.compile(r":(?:class|meth|func|data|mod|attr|exc|obj):`(~?)([^`]+)`")
LITERAL_MARKER = re.compile(r"(?<=\S)::$", re.MULTILINE)
LONE_MARKER = re.compile(r"^[ \t]*::[ \t]*\n", re.MULTILINE)
#: spans whose stars mean something: code, bold markers, *emphasis*
KEEP = re.compile(r"``.+?``|`[^`\n]+`|\*\*|(?<![\w*])\*[^\s*][^*\n]*?(?<!\s)\*(?![\w*])")
STAR_AFTER_NAME = re.compile(r"(?<=[\w)\]|])\*")


def _role(match: re.Match) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


def _escape_stars(line: str) -> str:
    parts: List[str] = []
    last = 0
    for match in KEEP.finditer(line):
        parts += [STAR_AFTER_NAME.sub(r"\\*", line[last : match.start()]), match.group()]
        last = match.end()
    parts.append(STAR_AFTER_NAME.sub(r"\\*", line[last:]))
    return "".join(parts)


def _escape_stars_outside_code(text: str) -> str:
    lines, in_code, blank_before = [], False, True
    for line in text.split("\n"):
        if line.strip():
            in_code = line.startswith("    ") and (blank_before or in_code)
            blank_before = False
            lines.append(line if in_code else _escape_stars(line))
        else:
            blank_before = True
            lines.append(line)
    return "\n".join(lines)


def markdown_from_rest(text: str) -> str:
    text = ROLE.sub(_role, text)
    text = LONE_MARKER.sub("", text)
    text = LITERAL_MARKER.sub(":", text)
    return _escape_stars_outside_code(text)


class RestRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_from_rest(obj.docstring.value)
