"""Facts about a parsed Dockerfile: the stages the shipped image is built from, and RUN commands."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import NamedTuple

from factorygate.facts.shell import Command, Pipeline, split_script
from factorygate.inputs.dockerfile import Dockerfile, Instruction, Stage


def parent_stage(df: Dockerfile, stage: Stage) -> Stage | None:
    """The earlier stage a FROM names (by ``AS`` name or index), or None for an image or scratch."""
    base = stage.base.lower()
    earlier = df.stages[: stage.position]
    named = [s for s in earlier if s.name == base]
    if named:
        return named[-1]
    return earlier[int(base)] if base.isdigit() and int(base) < stage.position else None


def lineage(df: Dockerfile, stage: Stage | None = None) -> list[Stage]:
    """The stage and the earlier stages it is built FROM (``FROM builder``), nearest last.

    USER, HEALTHCHECK and EXPOSE are inherited along this chain, as the builder does."""
    chain: list[Stage] = []
    current: Stage | None = stage or df.final
    while current is not None:
        chain.append(current)
        current = parent_stage(df, current)
    return list(reversed(chain))


def shipped_instructions(df: Dockerfile) -> tuple[Instruction, ...]:
    """Instructions of the final stage and of the stages it is built FROM, in build order (six checks
    ask for each Dockerfile: computed once, for the Dockerfile seen last)."""
    if _shipped_last and _shipped_last[0][0] is df:
        return _shipped_last[0][1]
    shipped = tuple(i for s in lineage(df) for i in s.instructions)
    _shipped_last[:] = [(df, shipped)]
    return shipped


# The Dockerfile seen last and its shipped instructions: the checks run one Dockerfile at a time.
_shipped_last: list[tuple[Dockerfile, tuple[Instruction, ...]]] = []


def is_stage_reference(df: Dockerfile, stage: Stage) -> bool:
    """Whether a FROM names an earlier stage (or ``scratch``) rather than an image."""
    return stage.base.lower() == "scratch" or parent_stage(df, stage) is not None


class RunScript(NamedTuple):
    """The shell script one RUN executes (shell form, exec form of a shell, or heredoc bodies)."""

    instruction: Instruction
    script: str

    @property
    def pipelines(self) -> tuple[Pipeline, ...]:
        return _pipelines(self.script)

    @property
    def commands(self) -> tuple[Command, ...]:
        return _commands(self.script)


# Every check reads the same RUN scripts: split each once.
@functools.lru_cache(maxsize=4096)
def _pipelines(script: str) -> tuple[Pipeline, ...]:
    return tuple(split_script(script))


@functools.lru_cache(maxsize=4096)
def _commands(script: str) -> tuple[Command, ...]:
    return tuple(c for p in _pipelines(script) for c in p.commands)


_SHELLS = {"sh", "bash", "ash", "dash", "zsh"}


@functools.lru_cache(maxsize=4096)
def run_script(ins: Instruction) -> RunScript:
    """What a RUN instruction executes, as one shell script."""
    parts: list[str] = []
    if ins.json_args is not None:
        argv = list(ins.json_args)
        program = argv[0].rsplit("/", 1)[-1] if argv else ""
        if program in _SHELLS and "-c" in argv[1:]:
            parts.append(" ".join(argv[argv.index("-c") + 1 :]))
        else:
            parts.append(" ".join(_quote(a) for a in argv))
    else:
        args = ins.args
        for h in ins.heredocs:  # the Dockerfile's own heredocs: their bodies are appended below
            args = re.sub(rf"<<-?\s*([\"']?){re.escape(h.delimiter)}\1", " ", args)
        parts.append(args)
    parts.extend(h.body for h in ins.heredocs)
    return RunScript(ins, "\n".join(parts))


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'" if any(c in word for c in " \t\n;&|<>()$`\"'\\") else word


def runs(instructions: list[Instruction] | tuple[Instruction, ...]) -> Iterator[RunScript]:
    for ins in instructions:
        if ins.keyword == "RUN":
            yield run_script(ins)
