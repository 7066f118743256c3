"""`python -m codemods PATH...`: the codemod's command line (same as `python -m compat.codemod`)."""

import sys

from codemods.cli import main

sys.exit(main())
