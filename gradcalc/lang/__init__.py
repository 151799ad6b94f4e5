"""Text -> plain data: the program's syntax tree, its parser, input values."""
