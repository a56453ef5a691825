"""One error type for every user mistake in a spec, and one renderer for it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Location:
    """Where a value came from: file, 1-based line and column, and the width of the token."""

    file: str
    line: int
    col: int
    width: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class SpecError(Exception):
    """A mistake in a spec (or a command-line override), located and with a hint."""

    def __init__(self, message: str, *, loc: Location | None = None, path: str = "",
                 hint: str = "", source_line: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.path = path
        self.hint = hint
        self.source_line = source_line

    def render(self) -> str:
        """`file:line:col: error: path: message`, the source line, a caret and the hint."""
        where = f"{self.loc}: " if self.loc else ""
        path = f"{self.path}: " if self.path else ""
        out = [f"{where}error: {path}{self.message}"]
        line = self.source_line
        if line is None and self.loc is not None:
            line = read_line(self.loc.file, self.loc.line)
        if line is not None and self.loc is not None:
            out.append("    " + line.rstrip("\n"))
            out.append("    " + " " * (self.loc.col - 1) + "^" * max(1, self.loc.width))
        if self.hint:
            out.append(f"  hint: {self.hint}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


_LINE_CACHE: dict[str, list[str]] = {}


def remember_source(file: str, text: str) -> None:
    """Keep the text of a file (or a `--set` argument) so errors can quote it."""
    _LINE_CACHE[file] = text.splitlines()


def read_line(file: str, line: int) -> str | None:
    lines = _LINE_CACHE.get(file)
    if lines is None:
        try:
            lines = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return None
        _LINE_CACHE[file] = lines
    return lines[line - 1] if 0 < line <= len(lines) else None


def closest(name: str, candidates) -> str | None:
    """The candidate closest to `name`, if any is close."""
    import difflib

    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, candidates) -> str:
    """A hint naming the closest candidate, or listing them when none is close."""
    candidates = sorted(set(candidates))
    close = closest(name, candidates)
    if close:
        return f"did you mean '{close}'?"
    if not candidates:
        return ""
    shown = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "")
    return f"known: {shown}"
