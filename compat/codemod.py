"""`python -m compat.codemod PATH...` and the `compat-codemod` script: the codemod's command line.

A thin entry point: the codemod lives in the `codemods` package (`codemods.cli`), and is imported only when this
runs, so `import compat` never imports libcst.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from codemods.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
