"""One module per `zoo` subcommand: `add_parser(subparsers)` and `run(args) -> exit code`."""
