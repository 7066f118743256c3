"""trl-imports: TRL names that moved, that `compat` keeps, and that are gone.

Each entry has the gate of the TRL version from which the old import fails (compat/versions.py):
- moved: `ORPOConfig/ORPOTrainer`, `CPO*`, `OnlineDPO*`, `GKD*` (from `trl` or `trl.trainer`) -> `trl.experimental.<x>`
  (0.26); `trl.trainer.utils.DPODataCollatorWithPadding` (0.27) and `pad_to_length` (0.29) ->
  `trl.experimental.utils`; `from trl import set_seed / is_peft_available` -> transformers' (0.14);
  `trl.commands.cli_utils.TrlParser / init_zero_verbose` -> `trl` (valid on every version, so always);
  `trl.commands.cli_utils.{SFT,DPO,Reward}ScriptArguments` -> `from trl import ScriptArguments as <old name>` (0.12;
  the alias keeps every use). A multi-name import is split, in module order; `trl.X` attribute uses get the new
  module path and its import.
- kept by compat (`import compat`, `compat.<name>` at every use; the old import goes when nothing uses it):
  `get_kbit_device_map` (1.8), `setup_chat_format` (0.26), `conversations_formatting_function` (0.27),
  `SIMPLE_CHAT_TEMPLATE` (0.27), TRL 0.8's `SftScriptArguments`/`DpoScriptArguments` (always: their successor lacks
  their fields). These need the stack compat supports (the compat floor).
- gone, reported with the way out: `DataCollatorForCompletionOnlyLM`, `ConstantLengthDataset` (0.20), the <= 0.11
  PPO API (0.12) and PPO itself (1.13), `trl.core` (0.26), DDPO/AlignProp (0.24), BCO/XPO/NashMD/PRM and
  `RunningMoments` (1.14).
Not touched: the same names imported from other packages, the user's own definitions, strings and comments.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

import libcst as cst

from codemods import cstutil
from codemods.rule import COMPAT_FLOOR_GATE, FileContext, Rule
from codemods.rules._function import imports_module

COMPAT = "compat"
EXPERIMENTAL = "trl_experimental_trainers"
TRAINER_UTILS = "trl_trainer_utils_moved"
PAD_TO_LENGTH = "trl_pad_to_length_moved"
TOP_LEVEL = "trl_top_level_utils_removed"
CLI = "trl_cli_utils_removed"
KBIT = "trl_kbit_device_map_removed"
SETUP = "trl_setup_chat_format_removed"
FORMATTING = "trl_dataset_formatting_removed"
SIMPLE = "trl_simple_chat_template_removed"
SFT_DATA = "trl_sft_data_helpers_removed"
OLD_PPO = "trl_old_ppo_api_removed"
PPO = "trl_ppo_removed"
CORE = "trl_core_removed"
DDPO = "trl_ddpo_alignprop_removed"
TRAINERS = "trl_trainers_removed"


@dataclass(frozen=True)
class Moved:
    module: str
    name: str
    gate: str | None  # None: the new import is valid on every version
    alias: bool = False  # import the new name under the old one (`ScriptArguments as DPOScriptArguments`)


@dataclass(frozen=True)
class Gone:
    gate: str
    message: str


def _table() -> tuple[dict[str, Moved], dict[str, tuple[str, str | None]], dict[str, Gone]]:
    moved: dict[str, Moved] = {}
    for family, module in (("ORPO", "orpo"), ("CPO", "cpo"), ("OnlineDPO", "online_dpo"), ("GKD", "gkd")):
        for suffix in ("Config", "Trainer"):
            for old in ("trl", "trl.trainer"):
                moved[f"{old}.{family}{suffix}"] = Moved(f"trl.experimental.{module}", family + suffix, EXPERIMENTAL)
    moved["trl.trainer.utils.DPODataCollatorWithPadding"] = Moved(
        "trl.experimental.utils", "DPODataCollatorWithPadding", TRAINER_UTILS
    )
    moved["trl.trainer.utils.pad_to_length"] = Moved("trl.experimental.utils", "pad_to_length", PAD_TO_LENGTH)
    moved["trl.set_seed"] = Moved("transformers", "set_seed", TOP_LEVEL)
    moved["trl.is_peft_available"] = Moved("transformers.utils", "is_peft_available", TOP_LEVEL)
    cli = "trl.commands.cli_utils"
    moved[f"{cli}.TrlParser"] = Moved("trl", "TrlParser", None)
    moved[f"{cli}.init_zero_verbose"] = Moved("trl", "init_zero_verbose", None)
    for old in ("SFTScriptArguments", "DPOScriptArguments", "RewardScriptArguments"):
        moved[f"{cli}.{old}"] = Moved("trl", "ScriptArguments", CLI, alias=True)

    to_compat: dict[str, tuple[str, str | None]] = {}
    for module in ("trl", "trl.trainer", "trl.trainer.utils"):
        to_compat[f"{module}.get_kbit_device_map"] = ("get_kbit_device_map", KBIT)
    for module in ("trl", "trl.models", "trl.models.utils"):
        to_compat[f"{module}.setup_chat_format"] = ("setup_chat_format", SETUP)
    to_compat["trl.extras.dataset_formatting.conversations_formatting_function"] = (
        "conversations_formatting_function",
        FORMATTING,
    )
    for module in ("trl.trainer.utils", "trl.experimental.utils"):
        to_compat[f"{module}.SIMPLE_CHAT_TEMPLATE"] = ("SIMPLE_CHAT_TEMPLATE", SIMPLE)
    for module in ("trl", cli):
        for name in ("SftScriptArguments", "DpoScriptArguments"):
            to_compat[f"{module}.{name}"] = (name, None)

    gone: dict[str, Gone] = {}
    for module in ("trl", "trl.trainer", "trl.trainer.utils"):
        gone[f"{module}.DataCollatorForCompletionOnlyLM"] = Gone(
            SFT_DATA,
            "DataCollatorForCompletionOnlyLM is gone (TRL 0.20): use SFTConfig(completion_only_loss=True) or assistant_only_loss=True",
        )
        gone[f"{module}.ConstantLengthDataset"] = Gone(
            SFT_DATA, "ConstantLengthDataset is gone (TRL 0.20): SFTConfig(packing=True) packs"
        )
    deleted = "{} was deleted in TRL {} (no successor): pin trl<{} or port the code"
    for family in ("BCO", "XPO", "NashMD", "PRM"):
        for suffix in ("Config", "Trainer"):
            name = family + suffix
            for module in ("trl", "trl.trainer", f"trl.experimental.{family.lower().replace('nashmd', 'nash_md')}"):
                gone[f"{module}.{name}"] = Gone(TRAINERS, deleted.format(name, "1.14", "1.14"))
    for module in ("trl.trainer.utils", "trl.experimental.bco.bco_trainer", "trl.trainer.bco_trainer"):
        gone[f"{module}.RunningMoments"] = Gone(
            TRAINERS, "RunningMoments was deleted in TRL 1.14: copy it into your code"
        )
    for name in ("DDPOTrainer", "DDPOConfig", "AlignPropTrainer", "AlignPropConfig"):
        for module in ("trl", "trl.trainer"):
            gone[f"{module}.{name}"] = Gone(DDPO, deleted.format(name, "0.24", "0.24"))
    for name in ("PPOTrainer", "PPOConfig", "AutoModelForCausalLMWithValueHead", "AutoModelForSeq2SeqLMWithValueHead"):
        for module in ("trl", "trl.trainer", "trl.models", "trl.experimental.ppo"):
            gone[f"{module}.{name}"] = Gone(
                PPO, f"{name} was deleted with PPO in TRL 1.13: use GRPOTrainer/RLOOTrainer"
            )
    return moved, to_compat, gone


MOVED, TO_COMPAT, GONE = _table()
_PPO_API = frozenset({"PPOTrainer", "PPOConfig"})
_OLD_PPO_MESSAGE = (
    "the <= 0.11 PPO API (PPOConfig(model_name=), .step()) is gone in TRL 0.12: port to PPOTrainer(args=)"
)
_NAMES = sorted({q.rsplit(".", 1)[1] for q in (*MOVED, *TO_COMPAT, *GONE)} | {"trl.core", "trl.commands"})


def _old_name(qname: str) -> str:
    return qname.rsplit(".", 1)[1]


class TrlImports(Rule):
    id = "trl-imports"
    summary = (
        "moved TRL imports (trl.experimental, ScriptArguments, ...), removed helpers -> compat, gone names reported"
    )
    triggers = ("trl",)
    trigger_regex = imports_module("trl")
    item_gates = (
        EXPERIMENTAL, TRAINER_UTILS, PAD_TO_LENGTH, TOP_LEVEL, CLI, KBIT, SETUP, FORMATTING, SIMPLE, SFT_DATA, OLD_PPO,
        PPO, CORE, DDPO, TRAINERS, COMPAT_FLOOR_GATE,
    )  # fmt: skip

    @classmethod
    def could_apply(cls, source: str, settings) -> bool:
        return any(name in source for name in _NAMES)

    def check(self, ctx: FileContext) -> None:
        self.ctx = ctx
        self.old_ppo: bool | None = None
        self.compat_ok = ctx.target_meets(COMPAT_FLOOR_GATE)
        a = ctx.analysis
        for item in a.absolute_imports():
            if isinstance(item, ast.ImportFrom):
                self.import_from(item)
            elif item.name == "trl.core" or item.name.startswith("trl.core."):
                self.gone_core(item)
        self.attributes()
        self.star_names()

    # ------------------------------------------------------------------ what a name is at the target
    def moved(self, qname: str) -> Moved | None:
        m = MOVED.get(qname)
        return m if m is not None and (m.gate is None or self.ctx.target_meets(m.gate)) else None

    def to_compat(self, qname: str) -> str | None:
        entry = TO_COMPAT.get(qname)
        if entry is None or not self.compat_ok or (entry[1] is not None and not self.ctx.target_meets(entry[1])):
            return None
        return entry[0]

    def gone(self, qname: str) -> str | None:
        """The message for a name that is gone at the target (None: not gone, or not ours)."""
        ctx = self.ctx
        entry = GONE.get(qname)
        if entry is not None and ctx.target_meets(entry.gate):
            return entry.message
        name = _old_name(qname)
        if entry is not None and name in _PPO_API and ctx.target_meets(OLD_PPO) and self.uses_old_ppo():
            return _OLD_PPO_MESSAGE
        if qname == "trl.trainer.utils.RunningMoments" and ctx.target_meets(PAD_TO_LENGTH):
            return "RunningMoments moved into trl.experimental.bco.bco_trainer (TRL 0.29); deleted in 1.14"
        if (qname.startswith("trl.core.") or qname == "trl.core") and ctx.target_meets(CORE):
            return "trl.core is gone (TRL 0.26): write your own LengthSampler/respond_to_batch"
        return None

    def uses_old_ppo(self) -> bool:
        """The file uses TRL <= 0.11's PPO API: PPOConfig(model_name=...), PPOTrainer(config, model, ...), `.step()`."""
        if self.old_ppo is None:
            a = self.ctx.analysis
            old = False
            for call in a.calls_by_name.get("PPOConfig", ()):
                old |= any(
                    k.arg in ("model_name", "query_dataset", "ppo_epochs", "forward_batch_size") for k in call.keywords
                )
            for call in a.calls_by_name.get("PPOTrainer", ()):
                old |= len(call.args) >= 2 or any(k.arg == "config" for k in call.keywords)
            old |= bool(a.calls_by_attr.get("step")) and bool(a.calls_by_name.get("PPOTrainer"))
            self.old_ppo = old
        return self.old_ppo

    # ------------------------------------------------------------------ from M import a, b
    def import_from(self, stmt: ast.ImportFrom) -> None:
        ctx = self.ctx
        module = stmt.module or ""
        if module == "trl.core" or module.startswith("trl.core."):
            for alias in stmt.names:
                self.gone_core(alias)
            return
        if not (module == "trl" or module.startswith("trl.")):
            return
        moves: list[tuple[ast.alias, Moved]] = []
        compat: list[tuple[ast.alias, str]] = []
        for alias in stmt.names:
            if alias.name == "*":
                continue
            qname = f"{module}.{alias.name}"
            move = self.moved(qname)
            if move is not None:
                moves.append((alias, move))
                continue
            name = self.to_compat(qname)
            if name is not None:
                if self.rewrite_uses(alias, name):
                    compat.append((alias, name))
                continue
            message = self.gone(qname)
            if message is not None:
                ctx.diagnose(alias, message)
            elif qname.startswith("trl.commands."):
                ctx.diagnose(alias, "trl.commands is gone (TRL 0.13): import this from trl, or copy it")
        if not moves:
            for alias, _ in compat:
                ctx.remove_import(alias)
            return
        self.split(stmt, moves, [alias for alias, _ in compat])

    def rewrite_uses(self, alias: ast.alias, name: str) -> bool:
        """`compat.<name>` at every load of the imported name; True when all could be rewritten (the import may go)."""
        ctx, a = self.ctx, self.ctx.analysis
        binding = a.binding_for(alias)
        if binding is None:
            return False
        ok = True
        for load in a.loads(binding):
            if a.in_fstring(load):
                ok = False
                continue
            if len(a.reaching(load)) != 1:
                ctx.diagnose(load, f"two objects share this name here: write compat.{name} by hand")
                ok = False
                continue
            ok &= self.to_compat_reference(load, name)
        return ok

    def to_compat_reference(self, node: ast.AST, name: str) -> bool:
        ctx, a = self.ctx, self.ctx.analysis
        for b in a.resolve(COMPAT, a.scope_of(node)):
            if not (b.kind == "import" and isinstance(b.statement, ast.Import) and b.qname == COMPAT):
                ctx.diagnose(node, f"`{COMPAT}` names another object here: write compat.{name} by hand")
                return False
        ctx.add_import(COMPAT)
        ctx.edit(node, lambda _n: cstutil.attr(COMPAT, name), f"{a.text(node)} -> compat.{name}", drops=(node,))
        return True

    def split(self, stmt: ast.ImportFrom, moves: list[tuple[ast.alias, Moved]], dropped: list[ast.alias]) -> None:
        """Rewrite one `from M import ...` whose names partly (or all) moved: the names that stay keep the statement,
        each new module gets a statement of its own, in module order around it."""
        ctx = self.ctx
        module = stmt.module or ""
        leaving = {id(al) for al, _ in moves} | {id(al) for al in dropped}
        kept = [al for al in stmt.names if id(al) not in leaving]
        groups: dict[str, list[str]] = {}
        for alias, move in moves:
            local = alias.asname or (alias.name if move.alias else None)
            text = move.name if local in (None, move.name) else f"{move.name} as {local}"
            groups.setdefault(move.module, []).append(text)
        statements = sorted(groups.items())
        label = ", ".join(al.name for al, _ in moves)
        if kept:
            keep_names = frozenset(al.name + (f" as {al.asname}" if al.asname else "") for al in kept)
            ctx.edit(stmt, lambda node: _keep_only(node, keep_names), f"{label} moved", at=moves[0][0])
            before = [s for s in statements if s[0] < module]
            after = [s for s in statements if s[0] >= module]
        else:
            first_module, first_names = statements[0]
            new = cst.parse_statement(f"from {first_module} import {', '.join(first_names)}\n").body[0]
            ctx.edit(stmt, lambda _node: new, f"{label} moved", at=moves[0][0], exclusive=True)
            before, after = [], statements[1:]
        if before:
            ctx.insert_before(stmt, "\n".join(f"from {m} import {', '.join(n)}" for m, n in before))
        if after:
            ctx.insert_after(stmt, "\n".join(f"from {m} import {', '.join(n)}" for m, n in after))

    def gone_core(self, alias: ast.alias) -> None:
        if self.ctx.target_meets(CORE):
            self.ctx.diagnose(alias, "trl.core is gone (TRL 0.26): write your own LengthSampler/respond_to_batch")

    # ------------------------------------------------------------------ trl.X through `import trl`
    def attributes(self) -> None:
        ctx, a = self.ctx, self.ctx.analysis
        for name in _NAMES:
            for node in a.attributes.get(name, ()):
                if not isinstance(node.ctx, ast.Load) or a.in_fstring(node):
                    continue
                qname = a.qualified_name(node)
                if qname is None or not qname.startswith("trl."):
                    continue
                move = self.moved(qname)
                if move is not None and not move.alias:
                    path = f"{move.module}.{move.name}"
                    ctx.add_import(move.module)
                    ctx.edit(node, lambda _n, p=path: cst.parse_expression(p), f"{qname} -> {path}")
                    continue
                compat = self.to_compat(qname)
                if compat is not None:
                    self.to_compat_reference(node, compat)
                    continue
                message = self.gone(qname)
                if message is not None:
                    ctx.diagnose(node, message)

    def star_names(self) -> None:
        """`from trl import *`: the names only the star import provides."""
        ctx, a = self.ctx, self.ctx.analysis
        stars = [s for s in a.imports if isinstance(s, ast.ImportFrom) and any(al.name == "*" for al in s.names)]
        if not any((s.module or "").startswith("trl") for s in stars):
            return
        for name in _NAMES:
            for node in a.names.get(name, ()):
                if not isinstance(node.ctx, ast.Load):
                    continue
                module = a.star_module(node)
                if module is None:
                    continue
                qname = f"{module}.{name}"
                compat = self.to_compat(qname)
                if compat is not None:
                    self.to_compat_reference(node, compat)
                    continue
                move = self.moved(qname)
                if move is not None:
                    ctx.diagnose(node, f"{name} moved to {move.module}: import it from there")
                    continue
                message = self.gone(qname)
                if message is not None:
                    ctx.diagnose(node, message)


def _import_text(alias: cst.ImportAlias) -> str:
    return re.sub(r"\s+", " ", cstutil.code(alias.with_changes(comma=cst.MaybeSentinel.DEFAULT)).strip())


def _keep_only(node: cst.ImportFrom, keep: frozenset[str]) -> cst.ImportFrom:
    if isinstance(node.names, cst.ImportStar):
        return node
    out = cstutil.without(node.names, lambda _, alias: _import_text(alias) not in keep)
    if out and not node.rpar and isinstance(out[-1].comma, cst.Comma):
        out[-1] = out[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)  # `from m import a,` does not parse
    return node.with_changes(names=out)
