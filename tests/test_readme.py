"""The README's Python snippets run as written.

Every fenced ``python`` block of README.md is extracted and run in a fresh interpreter
(with this checkout first on its path, in an empty directory).  An HTML comment on the
line just above a block says how:

* none: the block is a whole program and runs as it is;
* ``<!-- run inside a Context -->``: a fragment of the kind the README says run inside
  ``async def main(): async with zmtp.Context() as ctx:`` (it awaits, uses ``ctx``);
  it is run wrapped so;
* ``<!-- not run: REASON -->``: it cannot run here (a proxy already running, fixed
  ports); the reason is shown in the README, and must be there.

Any other comment just above a block is an error, so a typo cannot skip a block.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)
_MARK = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Snippet:
    line: int  # of the opening fence, 1-based
    code: str
    mark: str  # the comment above it, "" if none

    @property
    def id(self) -> str:
        return f"line{self.line}"


def snippets(text: str) -> list[Snippet]:
    """The fenced python blocks of ``text``, with the comment just above each."""
    found = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        comment = _MARK.match(before)
        found.append(
            Snippet(text.count("\n", 0, m.start()) + 1, m.group(1), comment[1] if comment else "")
        )
    return found


def program(snippet: Snippet) -> str:
    """The program that runs ``snippet``."""
    if snippet.mark == "":
        return snippet.code
    if snippet.mark == "run inside a Context":
        body = textwrap.indent(snippet.code, " " * 8)
        return (
            "import trio\nimport zmtp\n\n"
            "async def main():\n"
            "    async with zmtp.Context() as ctx:\n"
            f"{body}\n"
            "trio.run(main)\n"
        )
    raise AssertionError(f"README line {snippet.line}: unknown snippet mark {snippet.mark!r}")


ALL = snippets(README.read_text())
RUN = [s for s in ALL if not s.mark.startswith("not run")]


def test_the_readme_has_snippets_and_says_why_any_is_not_run() -> None:
    assert len(RUN) >= 7
    for s in ALL:
        if s.mark.startswith("not run"):
            reason = s.mark.removeprefix("not run").lstrip(":").strip()
            assert reason, f"README line {s.line}: say why the snippet is not run"
        else:
            program(s)  # a known mark


def test_the_extractor_sees_marks_and_wraps_fragments() -> None:
    text = (
        "intro\n\n```python\nprint(1)\n```\n\n<!-- run inside a Context -->\n"
        "```python\nawait trio.sleep(0)\n```\n<!-- not run: needs a server -->\n"
        "```python\nboom\n```\n<!-- not run -->\n```sh\nls\n```\n"
    )
    found = snippets(text)
    assert [(s.line, s.code, s.mark) for s in found] == [
        (3, "print(1)\n", ""),
        (8, "await trio.sleep(0)\n", "run inside a Context"),
        (12, "boom\n", "not run: needs a server"),
    ]
    assert "        await trio.sleep(0)\n" in program(found[1])
    with pytest.raises(AssertionError, match="unknown snippet mark"):
        program(snippets("<!-- run it -->\n```python\nx\n```\n")[0])


@pytest.mark.parametrize("snippet", RUN, ids=lambda s: s.id)
def test_readme_snippet_runs(snippet: Snippet, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # The timeout only guards against a hang: a snippet takes well under a second.
    result = subprocess.run(
        [sys.executable, "-c", program(snippet)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (
        f"README line {snippet.line} failed:\n{result.stdout}\n{result.stderr}"
    )
