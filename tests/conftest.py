import os

# Rich output at a fixed width and without colour, whatever terminal runs the tests.
os.environ.setdefault("COLUMNS", "120")
os.environ["NO_COLOR"] = "1"
