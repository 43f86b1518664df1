"""The examples in README.md and docs/*.md say what capgap really does, and their links lead somewhere.

Convention: a fenced block opened with ```console holds `$ capgap ...` command lines, each followed by
the output it prints (stdout and stderr together, in the order printed). A command may go on over
lines ending in a backslash. A line `...` stands for lines left out, and an output line ending in
`...` for the rest of that line. Every other output line must appear in the real output, whole and in
order. The command must exit 0, or 2 where its shown output says `capgap: error: ...` (bad input).
Blocks of any other kind (```bash, ```text, a bare fence) are not run: that is where commands that
train models, need a GPU or take long are shown.

Each command runs in this process (`capgap.commands.cli.main`), from the repository root, offline.
An `--out PATH` is written under pytest's tmp_path instead (PATH relative, e.g. out/law.json), later
arguments naming that PATH read the written file, and the tmp folder is taken out of the output again.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import warnings
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")


def _fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """Every fenced code block of a Markdown text as (info string, lines)."""
    blocks: list[tuple[str, list[str]]] = []
    opened: tuple[str, str, list[str]] | None = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if opened is None:
            if match:
                opened = (match.group(2), match.group(3).strip(), [])
        elif match and match.group(2).startswith(opened[0]) and not match.group(3).strip():
            blocks.append((opened[1], opened[2]))
            opened = None
        else:
            opened[2].append(line)
    return blocks


def _console_blocks(path: Path) -> list[list[str]]:
    return [lines for info, lines in _fenced_blocks(path.read_text(encoding="utf-8"))
            if info.split()[:1] == ["console"]]


def _examples(lines: list[str]) -> list[tuple[str, list[str]]]:
    """A console block as (command, expected output lines)."""
    examples: list[tuple[str, list[str]]] = []
    lines = list(lines)
    while lines:
        line = lines.pop(0)
        if not line.startswith("$ "):
            assert not examples and not line.strip(), f"output before any command: {line!r}"
            continue
        command = line[2:]
        while command.endswith("\\"):
            command = command[:-1] + " " + lines.pop(0).strip()
        expected: list[str] = []
        while lines and not lines[0].startswith("$ "):
            expected.append(lines.pop(0))
        examples.append((command, [e.rstrip() for e in expected if e.strip()]))
    return examples


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


CASES = [pytest.param(page, index, id=f"{_relative(page)}-{index}")
         for page in PAGES for index, _ in enumerate(_console_blocks(page))]


def _run(argv: list[str]) -> tuple[int, str]:
    from capgap.commands.cli import main

    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse's own usage errors
            status = exc.code if isinstance(exc.code, int) else 2
    return status, output.getvalue()


def _missing(expected: list[str], real: list[str]) -> str | None:
    """The first expected line not found, in order, in the real output (None: all are there)."""
    position = 0
    for line in expected:
        if line.strip() == "...":
            continue
        if line.endswith("..."):
            prefix = line[:-3].rstrip()
            found = lambda candidate: candidate.startswith(prefix)  # noqa: E731
        else:
            found = lambda candidate: candidate == line  # noqa: E731
        while position < len(real) and not found(real[position]):
            position += 1
        if position == len(real):
            return line
        position += 1
    return None


def test_every_page_is_checked():
    assert CASES, "no ```console example found"
    assert (ROOT / "docs" / "fit.md") in PAGES


@pytest.mark.parametrize(("page", "index"), CASES)
def test_console_example(page: Path, index: int, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(ROOT)
    for name, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # the CLI replaces it
    written: dict[str, str] = {}  # --out PATH as shown -> where it was written
    for command, expected in _examples(_console_blocks(page)[index]):
        argv = shlex.split(command, comments=True)
        assert argv[0] == "capgap", f"{_relative(page)}: a console example runs capgap, not {argv[0]!r}"
        rewritten: list[str] = []
        for i, arg in enumerate(argv[1:], start=1):
            if argv[i - 1] == "--out":
                assert not os.path.isabs(arg), f"{command}: write to a relative path such as out/..."
                target = tmp_path / arg
                target.parent.mkdir(parents=True, exist_ok=True)
                written[arg] = str(target)
            rewritten.append(written.get(arg, arg))
        argv = rewritten
        status, output = _run(argv)
        output = output.replace(f"{tmp_path}{os.sep}", "")
        wanted = 2 if any(line.startswith("capgap: error:") for line in expected) else 0
        assert status == wanted, f"{_relative(page)}: `{command}` exited {status}, not {wanted}:\n{output}"
        missing = _missing(expected, [line.rstrip() for line in output.splitlines()])
        assert missing is None, (f"{_relative(page)}: `{command}` did not print, in this order:\n{missing}\n"
                                 f"--- it printed:\n{output}")


LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a page (outside code blocks)."""
    anchors: set[str] = set()
    inside = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading and not inside:
            text = heading.group(1).lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def _links(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    kept, inside = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            inside = not inside
            continue
        if not inside:
            kept.append(re.sub(r"`[^`]*`", "", line))
    return LINK.findall("\n".join(kept))


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_relative_links_lead_somewhere(page: Path):
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto:
            continue
        target, _, anchor = unquote(link).partition("#")
        file = (page.parent / target).resolve() if target else page
        if not file.exists():
            broken.append(f"{link} (no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file})")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            broken.append(f"{link} (no heading #{anchor} in {_relative(file)})")
    assert not broken, f"{_relative(page)}: broken links: " + "; ".join(broken)
