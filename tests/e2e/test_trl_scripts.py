"""TRL's own 0.8.6/0.11.4/0.12.2 example scripts fail on today's stack as shipped, and train after the codemod.

Each script is taken from its wheel unmodified, run through its own CLI with a tiny local model, tokenizer and
dataset for 2 steps (tests/e2e/README.md). "Before": the script as shipped must fail, with the error the case table
names. "After": `python -m compat.codemod` rewrites it (targets: the installed trl/transformers/peft) and it must
train: a finite loss logged at each step and most weights changed against the initial model. An "after" case whose
rules are not registered yet is an expected failure naming them; once they are, it must pass.
"""

from __future__ import annotations

import pytest

from codemods import rules_by_id

from . import trl_scripts

REGISTERED = set(rules_by_id())


def _params(after: bool):
    for case in trl_scripts.CASES:
        marks = []
        if case.skip:
            marks.append(pytest.mark.skip(reason=case.skip))
        missing = [rule for rule in case.rules if rule not in REGISTERED]
        if after and missing:
            marks.append(
                pytest.mark.xfail(reason=f"codemod rules not registered yet: {', '.join(missing)}", strict=True)
            )
        yield pytest.param(case, id=case.id, marks=marks)


def _describe(outcome: trl_scripts.Outcome) -> str:
    codemod = ""
    if outcome.codemod is not None:
        codemod = f"\ncodemod (exit {outcome.codemod.returncode}):\n{outcome.codemod.stderr[-1500:]}"
    return (
        f"exit {outcome.returncode}, losses {outcome.losses}, {outcome.changed}/{outcome.compared} tensors "
        f"changed\nerror: {outcome.error}\nat: {outcome.error_site}{codemod}\nlog tail:\n{outcome.log[-3000:]}"
    )


@pytest.mark.parametrize("case", list(_params(after=False)))
def test_fails_before_codemod(case, e2e_runs):
    outcome = e2e_runs["before", case.id]
    assert outcome.returncode != 0 and not outcome.losses, f"{case.id} ran as shipped:\n{_describe(outcome)}"
    assert case.before in outcome.error, f"{case.id} failed otherwise than expected:\n{_describe(outcome)}"


@pytest.mark.parametrize("case", list(_params(after=True)))
def test_trains_after_codemod(case, e2e_runs):
    outcome = e2e_runs["after", case.id]
    assert outcome.codemod.returncode in (0, 3), f"the codemod failed on {case.id}:\n{_describe(outcome)}"
    assert outcome.trained, f"{case.id} did not train after the codemod:\n{_describe(outcome)}"


def test_every_case_is_a_script_of_its_wheel():
    """The case table names real scripts (and `tiny` formats), and lists every sft/dpo/reward script of the wheels."""
    import zipfile

    from . import tiny_stack

    for version in trl_scripts.VERSIONS:
        with zipfile.ZipFile(trl_scripts.wheel(version, trl_scripts.wheel_cache())) as whl:
            shipped = {
                n.rsplit("/", 1)[1][:-3]
                for n in whl.namelist()
                if n.startswith("trl/commands/scripts/") and n.endswith(".py") and n.count("/") == 3
            }
        cases = {case.script for case in trl_scripts.CASES if case.version == version}
        assert cases <= shipped, f"TRL {version} ships no {sorted(cases - shipped)}"
        assert {"sft", "dpo", "reward_modeling"} <= cases
        listed = set(trl_scripts.NOT_RUN.get(version, ()))
        assert shipped == cases | listed, (
            f"TRL {version}: scripts neither run nor listed: {sorted(shipped - cases - listed)}"
        )
    assert {case.dataset for case in trl_scripts.CASES} <= set(tiny_stack.FORMATS)
