"""Griffe extension: the package's reStructuredText docstring markup, as Markdown for mkdocstrings.

The docstrings use reST (``:func:`name```, ``double backticks``, ``text::`` before an indented
literal block, bullets right under a line); mkdocstrings renders Markdown. This rewrites, when the
API reference is built (never in the package itself):

* ``:role:`~target``` -> ```target``` (the role and reST's ``~`` / ``!`` prefixes dropped);
* ``text::`` + an indented block -> ``text:`` + a fenced ``text`` block;
* a bullet directly under a paragraph line gets the blank line Markdown needs.
"""

from __future__ import annotations

import re

from griffe import Extension, Object

ROLE = re.compile(r":(?:py:)?[a-z]+:`[~!]?([^`]+)`")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _literal_blocks(lines: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.strip().startswith(".."):
            base = _indent(line) + (2 if re.match(r"\s*[*-] ", line) else 0)  # a bullet's content indent
            text = line.rstrip()[:-1]
            out.append(text if text.strip() != ":" else "")
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block = []
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > base):
                block.append(lines[j])
                j += 1
            while block and not block[-1].strip():
                block.pop()
            if block:
                cut = min(_indent(b) for b in block if b.strip())
                pad = " " * base
                out += ["", pad + "```text", *[pad + b[cut:] for b in block], pad + "```", ""]
                i = j
                continue
        out.append(line)
        i += 1
    return out


def _bullets(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        starts_list = re.match(r"\s*[*-] ", line)
        if starts_list and out and out[-1].strip() and not re.match(r"\s*[*-] ", out[-1]):
            out.append("")
        out.append(line)
    return out


def rst_to_markdown(text: str) -> str:
    """The Markdown of one reST docstring (see the module docstring for what changes)."""
    text = ROLE.sub(r"`\1`", text)
    return "\n".join(_bullets(_literal_blocks(text.splitlines())))


class RstDocstrings(Extension):
    """Rewrites every loaded object's docstring with :func:`rst_to_markdown`."""

    def on_object(self, *, obj: Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
