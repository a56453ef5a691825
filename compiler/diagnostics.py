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
        """`file:line:col: error: path: message`, the source line, a caret and the hint.

        Each part is clipped, and a long source line is quoted as one screen line around the caret.
        """
        where = f"{clip(str(self.loc), 200)}: " if self.loc else ""
        path = f"{clip(self.path, 120)}: " if self.path else ""
        out = [clip(f"{where}error: {path}{clip(self.message, 300)}", 400)]
        line = self.source_line
        if line is None and self.loc is not None:
            line = read_line(self.loc.file, self.loc.line)
        if line is not None and self.loc is not None:
            quoted, caret = quote_line(line.rstrip("\r\n"), self.loc.col, self.loc.width)
            out += ["    " + quoted, "    " + caret]
        if self.hint:
            out.append(f"  hint: {clip(self.hint, 300)}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.render()


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (with an ellipsis), on one line."""
    text = text.replace("\n", "\\n").replace("\r", "\\r")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def quote_line(line: str, col: int, width: int) -> tuple[str, str]:
    """A source line and its caret line, at most one screen line: a window around the caret."""
    from biggan_zoo.compiler.limits import MAX_QUOTE_CHARS

    line = "".join(c if c.isprintable() else " " for c in line)  # tabs and controls would misplace the caret
    col = max(1, col)
    width = max(1, min(width, MAX_QUOTE_CHARS // 2))
    if len(line) <= MAX_QUOTE_CHARS:
        return line, " " * (col - 1) + "^" * width
    start = max(0, min(col - 1 - MAX_QUOTE_CHARS // 3, len(line) - MAX_QUOTE_CHARS))
    window = line[start:start + MAX_QUOTE_CHARS]
    head = "..." if start > 0 else ""
    tail = "..." if start + MAX_QUOTE_CHARS < len(line) else ""
    offset = col - 1 - start + len(head)
    width = max(1, min(width, len(head) + len(window) - offset))
    return head + window + tail, " " * offset + "^" * width


_LINE_CACHE: dict[str, list[str]] = {}


def remember_source(file: str, text: str) -> None:
    """Keep the text of a file (or a `--set` argument) so errors can quote it."""
    _LINE_CACHE[file] = text.splitlines()


def read_line(file: str, line: int) -> str | None:
    lines = _LINE_CACHE.get(file)
    if lines is None:  # only regular files of a spec's size are read for a quote (never a FIFO or device)
        import os
        import stat

        from biggan_zoo.compiler.limits import MAX_FILE_BYTES
        try:
            info = os.stat(file)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
                return None
            lines = Path(file).read_text(encoding="utf-8", errors="replace").splitlines()
        except (OSError, ValueError):
            return None
        _LINE_CACHE[file] = lines
    return lines[line - 1] if 0 < line <= len(lines) else None


def closest(name: str, candidates) -> str | None:
    """The candidate closest to `name`, if any is close: fewest edits first, then difflib's ratio.

    difflib alone ranks `biggan512` with `biggan128` for `biggan129` (same ratio); one edit away wins.
    """
    import difflib

    key = name[:64]
    pool = {c[:64]: c for c in set(candidates) if isinstance(c, str)}
    shortlist = difflib.get_close_matches(key, sorted(pool), n=12, cutoff=0.5)
    best, best_score = None, None
    for short in shortlist:
        distance = _edit_distance(key.lower(), short.lower())
        ratio = difflib.SequenceMatcher(None, key, short).ratio()
        if distance > max(1, len(key) // 3) and ratio < 0.6:
            continue
        score = (distance, -ratio, short)
        if best_score is None or score < best_score:
            best, best_score = pool[short], score
    return best


def _edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with adjacent transpositions (both strings at most 64 characters)."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def did_you_mean(name: str, candidates) -> str:
    """A hint naming the closest candidate, or listing them when none is close."""
    candidates = sorted(set(candidates))
    close = closest(name, candidates)
    if close:
        return f"did you mean '{close}'?"
    if not candidates:
        return ""
    shown = ", ".join(clip(c, 40) for c in candidates[:12]) + (", ..." if len(candidates) > 12 else "")
    return f"known: {shown}"
