"""Example zoo plugin ops. zoo finds them through the `zoo.ops` entry points in pyproject.toml;
importing this package registers nothing by itself."""
