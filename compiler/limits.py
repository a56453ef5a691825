"""Bounds that keep hostile or runaway specs from exhausting the machine. Each has an error.

Together they keep `zoo check` of any file within MAX_FILE_BYTES well under a second: the text is
read with a bounded read, parsed as a stream of events (never recursively), and every expression's
work and every value it makes is counted against a per-spec budget before it is done.
"""

MAX_FILE_BYTES = 256_000            # a spec larger than this is refused before parsing (catalog specs: < 6 kB)
MAX_DEPTH = 32                      # nesting depth of maps and lists
MAX_VALUES = 50_000                 # values after alias expansion ("billion laughs")
MAX_EXTENDS_DEPTH = 16              # length of an `extends:` chain
MAX_EXTENDS_FILES = 64              # files one spec reads through `extends` (lists of bases included)
MAX_EXPR_CHARS = 500                # characters inside one `${...}`
MAX_EXPR_NODES = 200                # AST nodes in one expression
MAX_EXPR_DEPTH = 40                 # nesting depth of one expression's syntax tree
MAX_MAGNITUDE = 10**15              # largest number an expression may produce (or read)
MAX_LIST_LEN = 10_000               # longest list an expression may produce
MAX_STRING_CHARS = 10_000           # longest string a `text ${expr} text` interpolation may produce
MAX_EXPR_STEPS = 100_000            # evaluation steps of all expressions of one spec together
MAX_EXPR_ELEMENTS = 100_000         # list elements made by all expressions of one spec together
MAX_VARS_CHAIN = 64                 # longest chain of vars that refer to vars
MAX_NODES = 5_000                   # nodes in one graph
MAX_TEMPLATE_NODES = 5_000          # nodes that the block templates of one spec expand to, all uses together
MAX_TEMPLATE_NESTING = 8            # templates using templates, at most this deep
MAX_DIM = 1_000_000                 # largest tensor dimension (channels, pixels, features)
MAX_SAMPLE_NUMEL = 2**31            # largest per-sample tensor
MAX_QUOTE_CHARS = 100               # an error quotes at most this much of a source line (one screen line)
