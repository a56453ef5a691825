"""`python -m biggan_zoo` runs the command line."""
from biggan_zoo.cli import entry

entry()
