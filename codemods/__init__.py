"""The codemod: a libcst-rendered, ast-analysed rewrite of fine-tuning code off removed transformers/peft/TRL APIs.

`codemods.engine.transform(source, Settings(...))` is the pure function; `python -m codemods` (or
`python -m compat.codemod`, `compat-codemod`) the command line. Nothing in this package imports torch,
transformers, peft or bitsandbytes. The rules live in codemods/rules/, one module each (see CONTRIBUTING.md).
"""

from __future__ import annotations

from codemods.rule import Finding, Rule, Settings
from codemods.rules import RULES


def rules_by_id() -> dict[str, type[Rule]]:
    """id -> rule class."""
    return {rule.id: rule for rule in RULES}


__all__ = ["Finding", "Rule", "Settings", "RULES", "rules_by_id"]
