"""``python -m portmargin.cli``."""

from portmargin.cli import main

raise SystemExit(main())
