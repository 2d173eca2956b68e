"""A griffe extension for the API reference: the reST bits of our docstrings, as Markdown.

Docstrings here use reST's inline roles (:func:`load`) and ``::`` before a literal block;
mkdocstrings renders Markdown, where those would show as written. Roles become inline code
and a closing ``::`` becomes ``:`` (the indented block after it is already a Markdown code
block).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`~?([^`]+)`")
_LITERAL = re.compile(r"(\S)::$|^::$", re.MULTILINE)


def markdown(text: str) -> str:
    text = _ROLE.sub(lambda match: f"`{match.group(1)}`", text)
    return _LITERAL.sub(lambda match: f"{match.group(1) or ''}:" if match.group(1) else "", text)


class RstRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown(obj.docstring.value)
