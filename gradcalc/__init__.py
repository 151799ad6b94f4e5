"""gradcalc: PyTorch's gradient printout for a formula, without PyTorch."""

__version__ = "0.1.0"
