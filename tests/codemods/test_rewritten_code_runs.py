"""The rewritten code runs against the installed transformers, and the code it replaces does not.

Every `run_*` fixture pair under `<fixtures>/<rule-id>/` is a small complete program: it loads the tiny model of the
test session (a 2-layer Qwen3 with a vocabulary of 1000; Qwen2 before transformers 4.51), a word-level tokenizer
built here with the `tokenizers` library, and, where the API is the Trainer's, runs a few real Trainer steps; it
asserts its own results. The programs see the globals MODEL_PATH, TOKENIZER_PATH and OUTPUT_DIR. This file never
runs a rule: it executes the expected outputs (`.py.out`) and inputs (`.py.in`), so it checks the fixtures' claims,
and test_fixtures.py checks that the rule writes exactly those outputs.

Header lines of a run case (comments: the rewrite keeps them, so they are in both files):

    # target: transformers=4.46     the targets the case is rewritten for (test_fixtures.py reads the same line)
    # run: old=<regex>              at or above the target, the .py.in raises, warns or logs a message matching it
    # run: below=<regex>            below the target, the .py.out raises a message matching it
    # run: below-old=<regex>        below the target, the .py.in raises a message matching it (default: it runs)

On a stack at or above every target of a case, the .py.out must run without raising and without a warning or log
that matches `old`, and the .py.in must fail or warn as `old` says. Below a target, the .py.in must run (or fail as
`below-old` says) and the .py.out must fail as `below` says, when given. Messages are matched as
"<ExceptionType>: <message>" for errors, "<WarningCategory>: <message>" for warnings, and the text of log records.

`COMPAT_FIXTURES` (an environment variable) points the test at another fixture root, e.g. cases not yet moved into
tests/codemods/fixtures.
"""

from __future__ import annotations

import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.version import Version

from compat import versions

FIXTURES = Path(os.environ.get("COMPAT_FIXTURES") or Path(__file__).parent / "fixtures")

# The rules whose rewrites change what runs: each must bring at least one run case once its fixtures exist.
RUNNABLE_RULES = (
    "transformers-processing-class",
    "transformers-training-args",
    "transformers-trainer-subclass-signatures",
    "transformers-use-auth-token",
    "transformers-apply-chat-template",
    "transformers-report-to",
    "transformers-tokenizer-type",
    "transformers-flash-attention-2",
    "transformers-removed-imports",
    "transformers-tokenizer-methods",
)
GA_CASE = "transformers-trainer-subclass-signatures/run_compute_loss_ga"
# The lines the trainer-subclass rule adds to close the gradient-accumulation trap (MIGRATION.md).
GA_DECLARATIONS = (
    "loss_is_scaled_for_ga = False",
    "self.model_accepts_loss_kwargs = False",
)

_TARGET = re.compile(r"#\s*target:\s*(.*)")
_RUN = re.compile(r"#\s*run:\s*([a-z-]+)=(.*)")
_RUN_KEYS = {"old", "below", "below-old"}


@dataclass(frozen=True)
class RunCase:
    name: str
    source_in: str
    source_out: str
    targets: dict[str, str]
    expect: dict[str, re.Pattern]


def _parse(path_in: Path) -> RunCase:
    source_in = path_in.read_text(encoding="utf-8")
    path_out = path_in.with_name(path_in.name[: -len(".in")] + ".out")
    source_out = path_out.read_text(encoding="utf-8")
    lines = source_in.splitlines()
    targets: dict[str, str] = {}
    target = _TARGET.match(lines[0]) if lines else None
    if target:
        for item in target.group(1).split():
            package, _, version = item.partition("=")
            targets[package] = version
    expect = {}
    for line in lines[1:]:
        if not line.startswith("#"):
            break
        m = _RUN.match(line)
        if m:
            assert m.group(1) in _RUN_KEYS, f"{path_in}: unknown run key {m.group(1)!r}"
            expect[m.group(1)] = re.compile(m.group(2).strip())
    name = f"{path_in.parent.name}/{path_in.name[: -len('.py.in')]}"
    return RunCase(name, source_in, source_out, targets, expect)


def _cases() -> list[RunCase]:
    return [_parse(p) for p in sorted(FIXTURES.glob("*/run_*.py.in"))]


CASES = _cases()


@dataclass
class Outcome:
    error: BaseException | None
    messages: list[str] = field(default_factory=list)  # warnings and log records
    namespace: dict = field(default_factory=dict)

    def describe(self) -> str:
        head = "ran" if self.error is None else f"raised {_text(self.error)}"
        return f"{head}; warnings/logs: {self.messages[:6]}"


def _text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _Records(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record.getMessage())


def execute(source: str, name: str, env: dict) -> Outcome:
    """Run a program in a fresh namespace; collect its exception, warnings and transformers log records."""
    import transformers

    messages: list[str] = []
    namespace = {"__name__": "__main__", **env}
    handler = _Records(messages)
    library_logger = logging.getLogger("transformers")
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_warning()
    library_logger.addHandler(handler)
    error = None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                exec(compile(source, name, "exec"), namespace)
            except Exception as exc:  # the program's own failure is the result
                error = exc
        messages.extend(f"{w.category.__name__}: {w.message}" for w in caught)
    finally:
        library_logger.removeHandler(handler)
        transformers.logging.set_verbosity(verbosity)
    return Outcome(error, messages, namespace)


def side(case: RunCase) -> str:
    """'new' when every target is met by the installed stack, 'old' when some package is below its target."""
    for package, version in case.targets.items():
        have = versions.installed(package)
        if have is None:
            pytest.skip(f"{package} is not installed")
        if Version(have.base_version) < Version(version):
            return "old"
    return "new"


@pytest.fixture(scope="session")
def tokenizer_path(tmp_path_factory) -> str:
    """A word-level tokenizer (<unk> <pad> <eos> <|user|> <|assistant|> w0 ... w989: 995 ids < the model's 1000) with
    a chat template, saved the way the installed transformers saves a fast tokenizer."""
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers

    specials = ["<unk>", "<pad>", "<eos>", "<|user|>", "<|assistant|>"]
    vocab = {token: i for i, token in enumerate(specials + [f"w{i}" for i in range(990)])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<eos>",
    )
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    path = str(tmp_path_factory.mktemp("tokenizer") / "word-level")
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def program_env(tiny_model_path, tokenizer_path, tmp_path):
    counter = iter(range(100))

    def env() -> dict:
        return {
            "MODEL_PATH": tiny_model_path,
            "TOKENIZER_PATH": tokenizer_path,
            "OUTPUT_DIR": str(tmp_path / f"out{next(counter)}"),
        }

    return env


def _matches(pattern: re.Pattern, outcome: Outcome, *, error_only: bool = False) -> bool:
    texts = [_text(outcome.error)] if outcome.error is not None else []
    if not error_only:
        texts += outcome.messages
    return any(pattern.search(t) for t in texts)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_run_case(case: RunCase, program_env) -> None:
    pytest.importorskip("transformers")
    where = side(case)
    old = case.expect.get("old")
    if where == "new":
        out = execute(case.source_out, f"{case.name}.py.out", program_env())
        assert out.error is None, f"the rewritten program fails on the installed stack: {out.describe()}"
        if old is not None:
            leftover = [m for m in out.messages if old.search(m)]
            assert not leftover, f"the rewritten program still warns about the old spelling: {leftover}"
            before = execute(case.source_in, f"{case.name}.py.in", program_env())
            assert _matches(old, before), (
                f"the old program was expected to fail or warn ({old.pattern}): {before.describe()}"
            )
    else:
        before = execute(case.source_in, f"{case.name}.py.in", program_env())
        below_old = case.expect.get("below-old")
        if below_old is None:
            assert before.error is None, f"below the target the old program must still run: {before.describe()}"
        else:
            assert _matches(below_old, before, error_only=True), f"expected {below_old.pattern}: {before.describe()}"
        below = case.expect.get("below")
        if below is not None:
            out = execute(case.source_out, f"{case.name}.py.out", program_env())
            assert _matches(below, out, error_only=True), (
                f"below the target the rewrite was expected to fail ({below.pattern}): {out.describe()}"
            )


@pytest.mark.parametrize("rule_id", RUNNABLE_RULES)
def test_every_runnable_rule_has_a_run_case(rule_id: str) -> None:
    directory = FIXTURES / rule_id
    if not directory.is_dir():
        pytest.skip(f"no fixtures for {rule_id} under {FIXTURES} yet")
    assert list(directory.glob("run_*.py.in")), f"{rule_id} has fixtures but no run_* case proving its rewrite runs"


def test_gradient_accumulation_trap(program_env) -> None:
    """The same tiny model and examples, gradient_accumulation_steps=2, one SGD step without clipping: the rewritten
    custom-loss subclass makes the same update as a plain Trainer; the subclass with only `num_items_in_batch=None`
    added (the naive fix) makes one twice as large, because the Trainer no longer divides a loss it takes to be
    normalized by `num_items_in_batch`."""
    path = FIXTURES / f"{GA_CASE}.py.in"
    if not path.exists():
        pytest.skip(f"no {GA_CASE} fixture under {FIXTURES} yet")
    pytest.importorskip("transformers")
    case = _parse(path)
    if side(case) == "old":
        pytest.skip(f"below {case.targets}: no declaration makes a custom loss GA-correct there (MIGRATION.md)")

    fixed = execute(case.source_out, f"{case.name}.py.out", program_env())
    assert fixed.error is None, fixed.describe()
    plain, custom = fixed.namespace["plain"], fixed.namespace["custom"]
    assert custom == pytest.approx(plain, rel=1e-4)

    lines = case.source_out.splitlines()
    naive_lines = [line for line in lines if line.strip() not in GA_DECLARATIONS]
    assert len(naive_lines) < len(lines), "the rewrite no longer declares the loss unscaled"
    naive_source = "\n".join(naive_lines) + "\n"
    naive = execute(naive_source, f"{case.name}.naive.py", program_env())
    assert isinstance(naive.error, AssertionError) and "gradients differ" in str(naive.error), naive.describe()
    naive_custom = naive.namespace["custom"]
    assert naive_custom == pytest.approx((2 * plain[0], 2 * plain[1]), rel=1e-3), (naive_custom, plain)
