"""The op table's sections, each a tuple `ROWS` of rows; `ops.py` joins them in order."""
