"""`python -m gradcalc`."""

from gradcalc.cli.commands import main

raise SystemExit(main())
