"""Text out, knowing no terminal: torch's tensor text, the report formats, diff and graph formats."""
