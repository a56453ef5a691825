"""Bounds that keep hostile or runaway specs from exhausting the machine. Each has an error."""

MAX_FILE_BYTES = 1_000_000          # a spec larger than this is refused before parsing
MAX_DEPTH = 32                      # nesting depth of maps and lists
MAX_VALUES = 200_000                # values after alias expansion ("billion laughs")
MAX_EXTENDS_DEPTH = 16              # length of an `extends:` chain
MAX_EXPR_CHARS = 500                # characters inside one `${...}`
MAX_EXPR_NODES = 200                # AST nodes in one expression
MAX_MAGNITUDE = 10**15              # largest number an expression may produce
MAX_LIST_LEN = 10_000               # longest list an expression may produce
MAX_NODES = 5_000                   # nodes in one graph
MAX_DIM = 1_000_000                 # largest tensor dimension (channels, pixels, features)
MAX_SAMPLE_NUMEL = 2**31            # largest per-sample tensor
