"""Read spec text safely: regular files only, a bounded read, and YAML/JSON parsed without recursion.

PyYAML's composer (and `json`) recurse once per nesting level, so deep input ends in RecursionError;
here the parser's event stream is folded into plain data with an explicit stack, counting depth and
values as it goes, so every bound is met with a located error before any work is done past it.
libyaml's parser is used when present (ten times faster); a small file it refuses is read again by
the pure-Python parser, whose messages are clearer and which accepts what libyaml cannot (JSON's
surrogate-pair escapes).
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import yaml

from biggan_zoo.compiler import limits
from biggan_zoo.compiler.diagnostics import Location, SpecError

KEY = "\0key"
"""Last element of a locs path that holds the location of a mapping key rather than its value."""
_STANDARD_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_STANDARD_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map")}
_EXPONENT_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")
_FAST = getattr(yaml, "CSafeLoader", None)
_LONGEST_NUMBER = 64
_NUMBER_CHARS = re.compile(r"[-+0-9._:eEoxXa-fA-F]+\Z")
_RETRY_PURE_BELOW = 16_000  # characters: the pure-Python parser reads this in about 0.2 s
_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFSOCK: "a socket"}


def read_spec_text(path: Path) -> str:
    """The UTF-8 text of a regular spec file (BOM dropped), read with a bounded read."""
    name = str(path)
    at = Location(name, 1, 1)  # refusals name the file; its text is never quoted (it is not read)
    try:
        info = os.stat(path)  # follows links; a loop is ELOOP, never a hang
    except OSError as e:
        if e.errno == 40:  # ELOOP
            raise SpecError(f"cannot read '{name}': a loop of symbolic links", loc=at, hint="fix the link") from None
        raise SpecError(f"cannot read '{name}': {e.strerror or 'no such file'}",
                        hint="check the path, or give a catalog name (see `zoo list`)") from None
    if not stat.S_ISREG(info.st_mode):
        what = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
        raise SpecError(f"'{name}' is {what}, not a spec file", loc=at, hint="give a YAML or JSON spec file")
    if info.st_size > limits.MAX_FILE_BYTES:
        raise SpecError(f"'{name}' is {info.st_size} bytes, more than the {limits.MAX_FILE_BYTES} allowed",
                        loc=Location(name, 1, 1), hint="a spec is a few kilobytes; is this the right file?")
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the stat still cannot block the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise SpecError(f"cannot read '{name}': {e.strerror}", loc=at) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SpecError(f"'{name}' is not a regular file", loc=at, hint="give a YAML or JSON spec file")
        chunks, size = [], 0
        while size <= limits.MAX_FILE_BYTES:  # /proc files report size 0: read, but never past the cap
            chunk = os.read(fd, min(65536, limits.MAX_FILE_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as e:
        raise SpecError(f"cannot read '{name}': {e.strerror}") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limits.MAX_FILE_BYTES:
        raise SpecError(f"'{name}' is more than the {limits.MAX_FILE_BYTES} bytes allowed",
                        loc=Location(name, 1, 1), hint="a spec is a few kilobytes; is this the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        raise SpecError(f"'{name}' is not UTF-8 text (byte {e.start})", loc=Location(name, line, 1),
                        hint="a spec is a YAML or JSON text file") from None


def compose(text: str, file: str) -> tuple[Any, dict[tuple, Location]]:
    """Plain data and the location of every value (and key) of one YAML/JSON document."""
    loader = _FAST if _FAST is not None else yaml.SafeLoader
    try:
        return _Folder(text, file).run(loader)
    except yaml.YAMLError as e:
        # libyaml's own depth limit: the pure parser's look-ahead over thousands of open brackets is slow
        deep = "nesting depth" in str(getattr(e, "problem", "") or "") or text.count("[") + text.count("{") > 1000
        if loader is yaml.SafeLoader or len(text) > _RETRY_PURE_BELOW or deep:
            raise
    return _Folder(text, file).run(yaml.SafeLoader)


def _loc(event: Any, file: str) -> Location:
    start, end = event.start_mark, event.end_mark
    width = end.column - start.column if end.line == start.line else 1
    return Location(file, start.line + 1, start.column + 1, max(1, width))


class _Folder:
    """Folds parser events into data; a frame per open collection replaces the composer's recursion."""

    def __init__(self, text: str, file: str) -> None:
        self.text, self.file = text, file
        self.locs: dict[tuple, Location] = {}
        self.order: list[tuple] = []  # paths in the order their locations were recorded
        self.count = 0
        self.anchors: dict[str, tuple[Any, dict[tuple, Location], int, int]] = {}
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()

    def run(self, loader: type) -> tuple[Any, dict[tuple, Location]]:
        self.locs, self.order, self.count, self.anchors = {}, [], 0, {}
        root: list[Any] = []
        # frame: [container, path, pending key (maps), seen keys, anchor, start index in locs order, depth]
        stack: list[list[Any]] = []
        documents = 0
        try:
            for event in yaml.parse(self.text, Loader=loader):
                if isinstance(event, yaml.DocumentStartEvent):
                    documents += 1
                    if documents > 1:
                        raise SpecError("more than one YAML document in the file", loc=_loc(event, self.file),
                                        hint="a spec is one document; remove the `---` line")
                elif isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                    path, _ = self._slot(stack, event)
                    self._check_tag(event, path)
                    depth = len(stack) + 1
                    if depth > limits.MAX_DEPTH + 1:
                        raise SpecError(f"nesting deeper than {limits.MAX_DEPTH} levels", loc=_loc(event, self.file),
                                        path=_dotted(path), hint="a spec nests a few levels deep")
                    self._count(event)
                    self._record(path, _loc(event, self.file))
                    container: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
                    stack.append([container, path, None, {}, event.anchor, len(self.order), depth])
                elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                    container, path, _, _, anchor, before, depth = stack.pop()
                    start = self.locs[path]
                    if event.end_mark.line + 1 == start.line:  # one line: the caret spans the collection
                        width = max(1, event.end_mark.column + 1 - start.col)
                        self.locs[path] = Location(start.file, start.line, start.col, width)
                    if anchor is not None:
                        self._remember(anchor, container, path, before, event)
                    self._place(stack, root, container, path)
                elif isinstance(event, yaml.ScalarEvent):
                    if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is None:
                        self._key(stack[-1], event)
                        continue
                    path, _ = self._slot(stack, event)
                    self._check_tag(event, path)
                    self._count(event)
                    self._record(path, _loc(event, self.file))
                    value = self._scalar(event, path)
                    if event.anchor is not None:
                        self.anchors[event.anchor] = (value, {(): _loc(event, self.file)}, 1, 0)
                    self._place(stack, root, value, path)
                elif isinstance(event, yaml.AliasEvent):
                    if stack and isinstance(stack[-1][0], dict) and stack[-1][2] is None:
                        raise SpecError("a key must be a plain name", loc=_loc(event, self.file),
                                        path=_dotted(stack[-1][1]))
                    self._alias(stack, root, event)
        except RecursionError:  # pragma: no cover - nothing above recurses; a last line of defence
            raise SpecError(f"nesting deeper than {limits.MAX_DEPTH} levels", loc=Location(self.file, 1, 1)) from None
        return (root[0] if root else None), self.locs

    # --- helpers -----------------------------------------------------------------------------

    def _count(self, event: Any, n: int = 1) -> None:
        self.count += n
        if self.count > limits.MAX_VALUES:
            raise SpecError(f"more than {limits.MAX_VALUES} values after expanding aliases", loc=_loc(event, self.file),
                            hint="YAML aliases (*name) are expanded; nested aliases grow exponentially")

    def _check_tag(self, event: Any, path: tuple) -> None:
        tag = event.tag
        if tag is None or tag == "!":
            return
        if tag not in _PLAIN_TAGS:
            shown = tag.replace(_STANDARD_TAG, "!!")
            raise SpecError(f"YAML tag '{shown}' is not allowed", loc=_loc(event, self.file), path=_dotted(path),
                            hint="specs are plain data (strings, numbers, booleans, lists, maps): "
                            "remove the tag, or quote the value")

    def _key(self, frame: list[Any], event: yaml.ScalarEvent) -> None:
        loc = _loc(event, self.file)
        if event.tag not in (None, "!") and event.tag not in _PLAIN_TAGS:
            self._check_tag(event, frame[1])
        if event.value == "<<" and not event.style:
            raise SpecError("YAML merge keys (<<) are not supported", loc=loc, hint="use `extends:` to reuse another spec")
        key, seen = event.value, frame[3]
        if key in seen:
            raise SpecError(f"duplicate key '{key}'", loc=loc, path=_dotted(frame[1]),
                            hint=f"first defined at {seen[key]}; remove one of them")
        seen[key] = loc
        frame[2] = key
        self._record(frame[1] + (key, KEY), loc)

    def _slot(self, stack: list[list[Any]], event: Any) -> tuple[tuple, Location | None]:
        """The path of the value that `event` starts."""
        if not stack:
            return (), None
        frame = stack[-1]
        if isinstance(frame[0], dict):
            if frame[2] is None:  # a collection used as a key
                raise SpecError("a key must be a plain name", loc=_loc(event, self.file), path=_dotted(frame[1]))
            return frame[1] + (frame[2],), None
        return frame[1] + (len(frame[0]),), None

    def _place(self, stack: list[list[Any]], root: list[Any], value: Any, path: tuple) -> None:
        if not stack:
            root.append(value)
            return
        frame = stack[-1]
        if isinstance(frame[0], dict):
            frame[0][frame[2]] = value
            frame[2] = None
        else:
            frame[0].append(value)

    def _scalar(self, event: yaml.ScalarEvent, path: tuple) -> Any:
        plain = not event.style  # libyaml's events say '' for plain, PyYAML's None
        if plain and event.tag is None and len(event.value) > _LONGEST_NUMBER:
            # PyYAML's implicit float pattern backtracks quadratically on long digit runs (seconds at
            # 5000 digits); a plain scalar this long is text, unless it is all number characters
            if _NUMBER_CHARS.match(event.value):
                raise SpecError(f"a number of {len(event.value)} characters", loc=_loc(event, self.file),
                                path=_dotted(path), hint="numbers in a spec have at most a few dozen digits")
            return event.value
        if plain and event.tag is None:
            tag = self.resolver.resolve(yaml.ScalarNode, event.value, event.implicit)
        else:
            tag = event.tag if event.tag not in (None, "!") else _STANDARD_TAG + "str"
        if tag not in _PLAIN_TAGS:
            shown = tag.replace(_STANDARD_TAG, "!!")
            raise SpecError(f"YAML tag '{shown}' is not allowed", loc=_loc(event, self.file),
                            path=_dotted(path), hint="quote the value to make it a string")
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style or None)
        try:
            value = self.constructor.construct_object(node)
        except (ValueError, OverflowError, yaml.YAMLError):
            raise SpecError(f"cannot read the number '{event.value[:40]}'", loc=_loc(event, self.file),
                            path=_dotted(path), hint="numbers in a spec have at most a few dozen digits") from None
        # PyYAML follows YAML 1.1, where a float needs a dot: plain `1e-4` (and JSON's `1e-08`) would
        # stay a string. Read them as YAML 1.2 and JSON do.
        if isinstance(value, str) and plain and _EXPONENT_FLOAT.match(value):
            return float(value)
        return value

    def _record(self, path: tuple, loc: Location) -> None:
        if path not in self.locs:
            self.locs[path] = loc
            self.order.append(path)

    def _remember(self, anchor: str, container: Any, path: tuple, before: int, event: Any) -> None:
        sub = {p[len(path):]: self.locs[p] for p in [path, *self.order[before:]]}
        size = sum(1 for p in sub if not p or p[-1] != KEY)
        height = max((sum(1 for part in p if part != KEY) for p in sub), default=0)
        self.anchors[anchor] = (container, sub, size, height)

    def _alias(self, stack: list[list[Any]], root: list[Any], event: yaml.AliasEvent) -> None:
        if event.anchor not in self.anchors:
            open_anchors = {frame[4] for frame in stack}
            why = "refers to a collection that contains it" if event.anchor in open_anchors else "is not defined above"
            raise SpecError(f"alias *{event.anchor} {why}", loc=_loc(event, self.file),
                            hint="define the anchor (&name) before its use, outside the value that uses it")
        value, sub, size, height = self.anchors[event.anchor]
        path, _ = self._slot(stack, event)
        self._count(event, size)
        if len(stack) + height > limits.MAX_DEPTH + 1:
            raise SpecError(f"nesting deeper than {limits.MAX_DEPTH} levels", loc=_loc(event, self.file),
                            path=_dotted(path), hint="a spec nests a few levels deep")
        for p, l in sub.items():
            self._record(path + p, l)
        self._place(stack, root, _copy(value), path)


def _copy(value: Any) -> Any:
    """A deep copy (each use of an alias is its own value, as the composer's expansion was)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
