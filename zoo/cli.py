"""The `zoo` command line. Each subcommand lives in `zoo/commands/<name>.py`.

Exit codes: 0 ok, 1 the input is wrong (a spec, a file, a checkpoint), 2 usage.
A user's mistake prints a located message, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

COMMANDS = ["check", "expand", "schema", "code", "build", "list", "train", "sample", "interpolate",
            "export", "convert", "stats", "eval", "plot", "prepare"]


# Commands that write no files: after them the process ends without the interpreter's teardown, which
# costs about 0.6 s once torch and its meta kernels are loaded (a fifth of `zoo build`'s time).
FAST_EXIT = {"build", "list", "code", "check", "expand", "schema"}


class UsageError(Exception):
    """A bad flag or flag combination (exit code 2)."""


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean the user's input is wrong (exit code 1, no traceback)."""
    from biggan_zoo.compiler.diagnostics import SpecError
    from biggan_zoo.runtime import UserError

    return (SpecError, UserError)


# Commands that name no spec, so take no --catalog folders.
NO_SPEC = {"schema", "export", "stats", "prepare"}


class _Version(argparse.Action):
    """`zoo --version`: the installed distribution's version, looked up only when asked."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("biggan-zoo")
        except PackageNotFoundError:
            found = "unknown (biggan-zoo is not installed: pip install .)"
        print(f"zoo {found}")
        parser.exit(0)


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="zoo", description="A declarative model zoo for the BigGAN family.")
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"biggan_zoo.commands.{name}")
        module.add_parser(sub)
        if name not in NO_SPEC:
            sub.choices[name].add_argument(
                "--catalog", action="append", default=[], metavar="DIR",
                help="a folder of spec files whose names count as catalog names, searched before "
                "$ZOO_CATALOG and the builtin catalog (repeatable)")
    return parser


def _own_folders() -> tuple[str, ...]:
    """Where our packages' files lie: three folders in a checkout, nested ones in an installed wheel."""
    import importlib.util

    names = ("biggan_zoo", "biggan_zoo.compiler", "biggan_zoo.runtime")
    return tuple(os.path.dirname(os.path.abspath(importlib.util.find_spec(n).origin)) + os.sep for n in names)


_OWN = _own_folders()
_python_format_warning = warnings.formatwarning


def _format_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    line: str | None = None) -> str:
    """Our own warnings read as one line for the user; other libraries' keep Python's form."""
    if os.path.abspath(filename).startswith(_OWN):
        return f"warning: {message}\n"
    return _python_format_warning(message, category, filename, lineno, line)


def main(argv: list[str] | None = None) -> int:
    warnings.formatwarning = _format_warning
    parser = make_parser()
    args = parser.parse_args(argv)  # exits 2 on a usage error
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(f"biggan_zoo.commands.{args.command}")
    from biggan_zoo.compiler import catalog

    folders = getattr(args, "catalog", [])
    try:
        for folder in folders:
            if not os.path.isdir(folder):
                raise UsageError(f"--catalog {folder}: not a folder")
        with catalog.searching(folders):
            return int(module.run(args) or 0)
    except UsageError as e:
        print(f"zoo {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `zoo list | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - user errors are reported, anything else re-raised
        if isinstance(e, user_error_types()):
            text = str(e)
            print(text if "error:" in text.split("\n")[0] else f"zoo {args.command}: error: {text}", file=sys.stderr)
            return 1
        raise


def entry() -> None:
    """The `zoo` console script and `python -m biggan_zoo`: run `main`, then exit with its code."""
    code = main()
    command = sys.argv[1] if len(sys.argv) > 1 else None
    if command in FAST_EXIT:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (BrokenPipeError, ValueError):  # `zoo list | head`: the reader left (stderr may be closed)
            pass
        os._exit(code)
    sys.exit(code)
