"""MkDocs hook: drop the test-runner options from fenced code blocks' info strings.

A block such as ```` ```bash skip="needs a Ray cluster" ```` tells ``tests/test_docs_examples.py`` not to
run it and why; GitHub ignores what follows the language, Python-Markdown does not, so it is removed
here before the page is rendered."""

import re

FENCE_OPTIONS = re.compile(r"^(\s*```+\s*[\w+-]+)[ \t]+(?:skip|tiny)=\"[^\"]*\"[ \t]*$", re.M)


def on_page_markdown(markdown, **kwargs):
    return FENCE_OPTIONS.sub(r"\1", markdown)
