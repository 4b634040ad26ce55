"""The Dockerfile parser: the language (BuildKit's rules), the public corpus, hostile inputs.

- Unit tests for every construct of the contract in ``factorygate.inputs.dockerfile``, with the
  exact line numbers of every instruction.
- The corpus test parses every file of ``/work/shared/corpus/docker`` (402 Dockerfiles of public
  projects): no error, and the whole corpus well under a second.
- Hostile inputs (binary junk, 50 MB, unterminated heredocs, 200k continuation lines, a 5 MB
  line...): an error or a result, quickly, never an exception.
- Properties: ``parse_dockerfile`` never raises on any bytes, and the logical lines it finds match
  a plain line-by-line reference implementation of the continuation rules.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from factorygate.inputs.dockerfile import (
    MAX_DOCKERFILE_BYTES,
    MAX_INSTRUCTION_CHARS,
    Dockerfile,
    DockerfileError,
    Heredoc,
    Instruction,
    expand,
    parse_dockerfile,
)

CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "docker"
# Corpus files that are not valid Dockerfiles, with the reason (none so far).
KNOWN_INVALID: dict[str, str] = {}
QUICK_S = 2.0  # hostile inputs: an answer within this, on a slow shared CI machine


def parse(text: str | bytes) -> Dockerfile:
    result = parse_dockerfile(text.encode() if isinstance(text, str) else text, "Dockerfile")
    assert isinstance(result, Dockerfile), result
    return result


def error(text: str | bytes) -> DockerfileError:
    result = parse_dockerfile(text.encode() if isinstance(text, str) else text, "Dockerfile")
    assert isinstance(result, DockerfileError), result
    assert result.path == "Dockerfile"
    return result


def instructions(df: Dockerfile) -> list[Instruction]:
    return [i for s in df.stages for i in s.instructions]


def summary(df: Dockerfile) -> list[tuple[str, str, int, int]]:
    """(keyword, args, line, end_line) of every instruction."""
    return [(i.keyword, i.args, i.line, i.end_line) for i in instructions(df)]


# -- instructions, keywords and line numbers -------------------------------------------------------


def test_every_instruction_with_its_exact_lines() -> None:
    df = parse(
        "FROM alpine:3.20\n"  # 1
        "\n"
        "# a comment\n"  # 3
        "RUN apk add --no-cache curl\n"  # 4
        "ENV A=1 \\\n"  # 5
        "    B=2\n"  # 6
        "   WORKDIR /app\n"  # 7 (leading blanks)
        "COPY . .\n"  # 8
        "USER 1000\n"  # 9
        "EXPOSE 8080\n"  # 10
        "HEALTHCHECK CMD wget -q -O- http://localhost/ || exit 1\n"  # 11
        'ENTRYPOINT ["/app"]\n'  # 12
    )
    assert summary(df) == [
        ("FROM", "alpine:3.20", 1, 1),
        ("RUN", "apk add --no-cache curl", 4, 4),
        ("ENV", "A=1 B=2", 5, 6),
        ("WORKDIR", "/app", 7, 7),
        ("COPY", ". .", 8, 8),
        ("USER", "1000", 9, 9),
        ("EXPOSE", "8080", 10, 10),
        ("HEALTHCHECK", "CMD wget -q -O- http://localhost/ || exit 1", 11, 11),
        ("ENTRYPOINT", '["/app"]', 12, 12),
    ]
    assert df.comments == ((3, "a comment"),)
    assert df.escape == "\\"
    assert df.directives == {}
    assert df.path == "Dockerfile"


def test_keywords_are_case_insensitive_and_stored_upper_case() -> None:
    df = parse("from alpine AS base\nrun echo hi\nCoPy a b\narg X=1\n")
    assert [i.keyword for i in instructions(df)] == ["FROM", "RUN", "COPY", "ARG"]
    assert df.stages[0].name == "base"


def test_unknown_keywords_are_kept_as_instructions() -> None:
    df = parse("FROM a\nFROBNICATE the widget\nMAINTAINER someone\n")
    assert summary(df)[1:] == [("FROBNICATE", "the widget", 2, 2), ("MAINTAINER", "someone", 3, 3)]


def test_original_is_the_text_as_written() -> None:
    df = parse("FROM a\n  RUN echo a \\\n    # inside\n    && echo b\n")
    run = instructions(df)[1]
    assert run.original == "  RUN echo a \\\n    # inside\n    && echo b"
    assert run.args == "echo a && echo b"


def test_instruction_without_arguments() -> None:
    assert summary(parse("FROM a\nRUN\nCMD   \n")) == [("FROM", "a", 1, 1), ("RUN", "", 2, 2), ("CMD", "", 3, 3)]


def test_file_without_final_newline() -> None:
    assert summary(parse("FROM a\nUSER 1")) == [("FROM", "a", 1, 1), ("USER", "1", 2, 2)]


# -- continuations ---------------------------------------------------------------------------------


def test_backslash_continuations_are_joined_with_one_space() -> None:
    df = parse(
        "FROM a\n"
        "RUN set -eux; \\\n"  # 2
        "\tapt-get update; \\\n"
        "    apt-get install -y --no-install-recommends \\\n"
        "        curl \\\n"
        "        ca-certificates   \\   \n"  # blanks around the escape
        "    ; rm -rf /var/lib/apt/lists/*\n"  # 7
        "USER 1\n"  # 8
    )
    assert summary(df)[1:] == [
        (
            "RUN",
            "set -eux; apt-get update; apt-get install -y --no-install-recommends curl ca-certificates ;"
            " rm -rf /var/lib/apt/lists/*",
            2,
            7,
        ),
        ("USER", "1", 8, 8),
    ]


def test_a_line_break_inside_a_word_joins_the_word() -> None:
    # Docker removes the escape and the line break and nothing else: "PATH=/a:/b".
    df = parse("FROM a\nENV PATH=/usr/local/bin:\\\n/usr/bin \\\n  X=1\n")
    assert summary(df)[1] == ("ENV", "PATH=/usr/local/bin:/usr/bin X=1", 2, 4)


def test_comment_and_empty_lines_inside_a_continuation_are_dropped() -> None:
    df = parse(
        "FROM a\n"
        "RUN apt-get update \\\n"  # 2
        "# the packages\n"  # 3
        "\n"  # 4
        "   \t\n"  # 5
        "    # more\n"  # 6
        "    && apt-get install -y curl\n"  # 7
        "# after\n"  # 8
        "USER 1\n"  # 9
    )
    assert summary(df)[1:] == [("RUN", "apt-get update && apt-get install -y curl", 2, 7), ("USER", "1", 9, 9)]
    assert df.comments == ((3, "the packages"), (6, "more"), (8, "after"))


def test_a_continuation_goes_on_across_empty_lines_to_the_next_line() -> None:
    # As BuildKit does (with a warning): the empty line does not end the instruction.
    df = parse("FROM a\nRUN echo a \\\n\nUSER 1\n")
    assert summary(df)[1:] == [("RUN", "echo a USER 1", 2, 4)]


def test_continuation_at_the_end_of_the_file() -> None:
    df = parse("FROM a\nRUN echo a \\\n")
    assert summary(df)[1:] == [("RUN", "echo a", 2, 2)]
    df = parse("FROM a\nRUN echo a \\\n  # trailing comment\n\n")
    assert summary(df)[1:] == [("RUN", "echo a", 2, 4)]
    assert df.comments == ((3, "trailing comment"),)


def test_lines_of_only_an_escape_character() -> None:
    df = parse("FROM a\nRUN a \\\n  \\\n\\\n  b\n")
    assert summary(df)[1:] == [("RUN", "a b", 2, 5)]


def test_a_double_backslash_at_the_end_still_continues() -> None:
    # BuildKit's continuation regex: the last backslash continues, the one before it is kept.
    df = parse("FROM a\nRUN echo \\\\\nUSER 1\n")
    assert summary(df)[1:] == [("RUN", "echo \\USER 1", 2, 3)]


def test_backtick_escape_directive() -> None:
    df = parse(
        "# escape=`\n"  # 1
        "FROM mcr.microsoft.com/windows/servercore:ltsc2022\n"  # 2
        "RUN Write-Host a; `\n"  # 3
        "    # comment `\n"  # 4
        "    Write-Host b\n"  # 5
        "COPY testfile.txt c:\\\n"  # 6: a backslash is text here
        "RUN dir c:\\\n"  # 7
    )
    assert df.escape == "`"
    assert df.directives == {"escape": "`"}
    assert summary(df) == [
        ("FROM", "mcr.microsoft.com/windows/servercore:ltsc2022", 2, 2),
        ("RUN", "Write-Host a; Write-Host b", 3, 5),
        ("COPY", "testfile.txt c:\\", 6, 6),
        ("RUN", "dir c:\\", 7, 7),
    ]
    assert df.comments == ((4, "comment `"),)


def test_with_backslash_escape_a_backtick_is_text() -> None:
    df = parse("FROM a\nRUN echo `\nUSER 1\n")
    assert summary(df)[1:] == [("RUN", "echo `", 2, 2), ("USER", "1", 3, 3)]


def test_crlf_line_endings() -> None:
    df = parse("FROM a AS b\r\n# note\r\nRUN x \\\r\n  y\r\nUSER 1\r\n")
    assert summary(df) == [("FROM", "a AS b", 1, 1), ("RUN", "x y", 3, 4), ("USER", "1", 5, 5)]
    assert df.comments == ((2, "note"),)
    assert instructions(df)[1].original == "RUN x \\\n  y"
    assert df.stages[0].name == "b"


def test_crlf_heredoc() -> None:
    df = parse("FROM a\r\nRUN <<EOF\r\necho hi\r\nEOF\r\nUSER 1\r\n")
    run = instructions(df)[1]
    assert run.heredocs == (Heredoc("EOF", "echo hi\n", 3, quoted=False, strip_tabs=False),)
    assert (run.line, run.end_line) == (2, 4)


def test_byte_order_mark_at_the_start() -> None:
    df = parse(b"\xef\xbb\xbf# syntax=docker/dockerfile:1\nFROM a\n")
    assert df.directives == {"syntax": "docker/dockerfile:1"}
    assert summary(df) == [("FROM", "a", 2, 2)]
    df = parse(b"\xef\xbb\xbfFROM a\n")
    assert summary(df) == [("FROM", "a", 1, 1)]


# -- parser directives -----------------------------------------------------------------------------


def test_directives_at_the_top() -> None:
    df = parse("# syntax=docker/dockerfile:1.7\n#  ESCAPE = `  \n# check=skip=JSONArgsRecommended\nFROM a\n")
    assert df.directives == {"syntax": "docker/dockerfile:1.7", "escape": "`", "check": "skip=JSONArgsRecommended"}
    assert df.escape == "`"
    assert df.comments == ()


@pytest.mark.parametrize(
    "text",
    [
        "# hello\n# escape=`\nFROM a\n",  # after another comment
        "\n# escape=`\nFROM a\n",  # after an empty line
        "FROM a\n# escape=`\n",  # after an instruction
        "# unknown=1\n# escape=`\nFROM a\n",  # after a directive BuildKit does not know
    ],
)
def test_directives_only_at_the_very_top(text: str) -> None:
    df = parse(text)
    assert df.escape == "\\"
    assert df.directives == {}
    assert "escape=`" in [c for _, c in df.comments]


def test_a_directive_with_leading_blanks_counts() -> None:
    assert parse("   # escape=`\nFROM a\n").escape == "`"


def test_invalid_directives() -> None:
    assert error("# escape=x\nFROM a\n").line == 1
    e = error("# syntax=a\n# syntax=b\nFROM a\n")
    assert (e.line, e.message) == (2, "only one syntax parser directive can be used")


# -- heredocs --------------------------------------------------------------------------------------


def test_heredoc_run() -> None:
    df = parse(
        "FROM a\n"
        "RUN <<EOF\n"  # 2
        "set -e\n"
        "apt-get update\n"
        "EOF\n"  # 5
        "USER 1\n"  # 6
    )
    run = instructions(df)[1]
    assert (run.keyword, run.args, run.line, run.end_line) == ("RUN", "<<EOF", 2, 5)
    assert run.heredocs == (Heredoc("EOF", "set -e\napt-get update\n", 3, quoted=False, strip_tabs=False),)
    assert run.original == "RUN <<EOF\nset -e\napt-get update\nEOF"
    assert summary(df)[2] == ("USER", "1", 6, 6)


def test_heredoc_body_lines_are_not_instructions_nor_comments() -> None:
    df = parse("FROM a\nRUN <<EOF\n# not a comment\nFROM evil\n\nEOF\n")
    assert len(df.stages) == 1
    assert df.comments == ()
    assert instructions(df)[1].heredocs[0].body == "# not a comment\nFROM evil\n\n"


def test_heredoc_strip_tabs() -> None:
    df = parse("FROM a\nRUN <<-EOT\n\techo a\n\t\techo b\n  echo c\n\t\tEOT\n")
    (h,) = instructions(df)[1].heredocs
    assert h == Heredoc("EOT", "echo a\necho b\n  echo c\n", 3, quoted=False, strip_tabs=True)
    assert instructions(df)[1].end_line == 6


def test_heredoc_without_dash_needs_the_delimiter_alone() -> None:
    err = error("FROM a\nRUN <<EOF\necho\n\tEOF\n EOF\nEOF \n")
    assert err.line == 2
    assert "unterminated heredoc" in err.message


@pytest.mark.parametrize(
    ("introducer", "delimiter", "quoted"),
    [("<<EOF", "EOF", False), ('<<"EOF"', "EOF", True), ("<<'EOF'", "EOF", True), ("<<E'O'F", "EOF", True)],
)
def test_heredoc_quoted_delimiters(introducer: str, delimiter: str, quoted: bool) -> None:
    df = parse(f"FROM a\nRUN {introducer}\necho $HOME\n{delimiter}\n")
    (h,) = instructions(df)[1].heredocs
    assert (h.delimiter, h.quoted, h.body) == (delimiter, quoted, "echo $HOME\n")


def test_several_heredocs_in_one_instruction() -> None:
    df = parse(
        "FROM a\n"
        "RUN <<FILE1 cat > /f1 && <<-FILE2 cat > /f2\n"  # 2
        "one\n"  # 3
        "FILE1\n"  # 4
        "\ttwo\n"  # 5
        "\tFILE2\n"  # 6
        "USER 1\n"  # 7
    )
    run = instructions(df)[1]
    assert run.heredocs == (
        Heredoc("FILE1", "one\n", 3, quoted=False, strip_tabs=False),
        Heredoc("FILE2", "two\n", 5, quoted=False, strip_tabs=True),
    )
    assert (run.line, run.end_line) == (2, 6)
    assert summary(df)[2] == ("USER", "1", 7, 7)


def test_copy_heredoc_with_destination() -> None:
    df = parse("FROM a\nCOPY --chmod=755 <<EOF /usr/local/bin/run.sh\n#!/bin/sh\nexec app\nEOF\n")
    copy = instructions(df)[1]
    assert (copy.args, copy.flags, copy.flag("chmod")) == ("<<EOF /usr/local/bin/run.sh", ("--chmod=755",), "755")
    assert copy.heredocs == (Heredoc("EOF", "#!/bin/sh\nexec app\n", 3, quoted=False, strip_tabs=False),)


def test_empty_heredoc_and_heredoc_with_fd() -> None:
    df = parse("FROM a\nRUN <<EOF\nEOF\nRUN cat 3<<X\nx\nX\n")
    assert instructions(df)[1].heredocs == (Heredoc("EOF", "", 3, quoted=False, strip_tabs=False),)
    assert instructions(df)[2].heredocs == (Heredoc("X", "x\n", 5, quoted=False, strip_tabs=False),)
    assert [i.end_line for i in instructions(df)] == [1, 3, 6]


def test_heredoc_introduced_on_a_continuation_line() -> None:
    df = parse("FROM a\nRUN --mount=type=cache,target=/x \\\n    <<EOF\necho\nEOF\n")
    run = instructions(df)[1]
    assert (run.args, run.line, run.end_line) == ("<<EOF", 2, 5)
    assert run.heredocs[0].line == 4


def test_heredoc_at_the_end_of_the_file_without_newline() -> None:
    df = parse("FROM a\nRUN <<EOF\necho\nEOF")
    assert instructions(df)[1].heredocs[0].body == "echo\n"


def test_onbuild_heredoc() -> None:
    df = parse("FROM a\nONBUILD RUN <<EOF\necho\nEOF\nUSER 1\n")
    assert instructions(df)[1].heredocs[0].body == "echo\n"
    assert summary(df)[2] == ("USER", "1", 5, 5)


@pytest.mark.parametrize(
    "line",
    [
        'RUN ["sh", "-c", "cat <<EOF"]',  # exec form: no heredoc
        "RUN cat <<<EOF",  # a here-string
        "RUN cat<<EOF",  # not a word of its own (BuildKit's rule)
        "ENV X=<<EOF",  # only RUN, COPY and ADD have heredocs
        "RUN echo '<<EOF'",  # quoted
    ],
)
def test_not_heredocs(line: str) -> None:
    df = parse(f"FROM a\n{line}\nUSER 1\n")
    assert instructions(df)[1].heredocs == ()
    assert summary(df)[2] == ("USER", "1", 3, 3)


def test_unterminated_heredoc_names_its_start_line() -> None:
    err = error("FROM a\nUSER 1\nRUN echo \\\n  && cat <<EOF\nline\nEOT\n")
    assert err.line == 3
    assert "unterminated heredoc" in err.message
    assert "EOF" in err.message
    assert error("FROM a\nRUN <<A <<B\nA\n").line == 2  # the second one
    assert error("FROM a\nRUN <<EOF").line == 2  # nothing after it


# -- exec form, flags ------------------------------------------------------------------------------


def test_json_exec_form_and_shell_form() -> None:
    df = parse(
        "FROM a\n"
        'CMD ["nginx", "-g", "daemon off;"]\n'
        'ENTRYPOINT [ "/bin/tini" , "--" ]\n'
        'RUN ["/bin/sh", "-c", "echo \\"hi\\""]\n'
        'SHELL ["/bin/bash", "-o", "pipefail", "-c"]\n'
        'COPY ["a b", "/dst/"]\n'
        'VOLUME ["/data"]\n'
        "CMD nginx -g 'daemon off;'\n"
        "CMD [nginx, -g]\n"  # not JSON: shell form
        'CMD ["a", 1]\n'  # not an array of strings
        'CMD ["a"] extra\n'
        'LABEL ["x"]\n'  # LABEL has no exec form
        "CMD []\n"
    )
    got = [(i.keyword, i.json_args) for i in instructions(df)[1:]]
    assert got == [
        ("CMD", ("nginx", "-g", "daemon off;")),
        ("ENTRYPOINT", ("/bin/tini", "--")),
        ("RUN", ("/bin/sh", "-c", 'echo "hi"')),
        ("SHELL", ("/bin/bash", "-o", "pipefail", "-c")),
        ("COPY", ("a b", "/dst/")),
        ("VOLUME", ("/data",)),
        ("CMD", None),
        ("CMD", None),
        ("CMD", None),
        ("CMD", None),
        ("LABEL", None),
        ("CMD", ()),
    ]


def test_json_args_across_continuation_lines() -> None:
    df = parse('FROM a\nCMD ["a", \\\n     "b"]\n')
    assert instructions(df)[1].json_args == ("a", "b")


def test_flags() -> None:
    df = parse(
        "FROM --platform=$BUILDPLATFORM golang:1.22 AS build\n"
        "RUN --mount=type=cache,target=/root/.cache/go-build --network=none go build ./...\n"
        "FROM scratch\n"
        'COPY --from=build --chown="1000:1000" --link /out/app /app\n'
        "COPY -- --weird-name /dst\n"
        "ADD --checksum=sha256:abc https://example.com/x.tgz /x.tgz\n"
        'HEALTHCHECK --interval=30s --timeout=3s CMD ["/app", "health"]\n'
        "RUN --\n"
    )
    got = [(i.keyword, i.flags, i.args) for i in instructions(df)]
    assert got == [
        ("FROM", ("--platform=$BUILDPLATFORM",), "golang:1.22 AS build"),
        ("RUN", ("--mount=type=cache,target=/root/.cache/go-build", "--network=none"), "go build ./..."),
        ("FROM", (), "scratch"),
        ("COPY", ("--from=build", "--chown=1000:1000", "--link"), "/out/app /app"),
        ("COPY", (), "--weird-name /dst"),
        ("ADD", ("--checksum=sha256:abc",), "https://example.com/x.tgz /x.tgz"),
        ("HEALTHCHECK", ("--interval=30s", "--timeout=3s"), 'CMD ["/app", "health"]'),
        ("RUN", (), ""),
    ]
    copy = instructions(df)[3]
    assert (copy.flag("from"), copy.flag("chown"), copy.flag("link"), copy.flag("chmod")) == (
        "build",
        "1000:1000",
        "",
        None,
    )
    assert df.stages[0].instructions[0].flag("platform") == "$BUILDPLATFORM"


def test_exec_form_after_flags() -> None:
    df = parse('FROM a\nRUN --network=none ["/bin/true"]\n')
    run = instructions(df)[1]
    assert (run.flags, run.json_args) == (("--network=none",), ("/bin/true",))


# -- ARG substitution in FROM, stages ----------------------------------------------------------------


def test_arg_substitution_in_from() -> None:
    df = parse(
        "ARG REGISTRY=registry.example.com\n"
        "ARG IMAGE\n"
        'ARG TAG="1.2.3"\n'
        "ARG VARIANT=${TAG}-slim\n"
        "FROM ${REGISTRY}/${IMAGE:-python}:${TAG} AS base\n"
        "FROM $REGISTRY/tool:${VARIANT}\n"
        "FROM ${UNSET}alpine${UNSET:+:never}\n"
        "FROM ${IMAGE-plain}:${IMAGE:+x}\n"
        "FROM '${REGISTRY}'/x\n"
    )
    assert df.global_args == {
        "REGISTRY": "registry.example.com",
        "IMAGE": None,
        "TAG": "1.2.3",
        "VARIANT": "1.2.3-slim",
    }
    assert [(s.base, s.base_raw) for s in df.stages] == [
        ("registry.example.com/python:1.2.3", "${REGISTRY}/${IMAGE:-python}:${TAG}"),
        ("registry.example.com/tool:1.2.3-slim", "$REGISTRY/tool:${VARIANT}"),
        ("alpine", "${UNSET}alpine${UNSET:+:never}"),
        ("plain:", "${IMAGE-plain}:${IMAGE:+x}"),
        ("${REGISTRY}/x", "'${REGISTRY}'/x"),  # single quotes: no substitution
    ]


def test_an_arg_redefined_after_from_does_not_affect_from() -> None:
    df = parse("ARG V=1\nFROM base:$V AS one\nARG V=2\nENV V=3\nFROM base:${V} AS two\n")
    assert [s.base for s in df.stages] == ["base:1", "base:1"]
    assert df.global_args == {"V": "1"}
    assert summary(df)[1] == ("ARG", "V=2", 3, 3)


def test_several_args_in_one_instruction_and_redeclarations() -> None:
    df = parse("ARG A=1 B C=x\\ y\nARG A\nFROM img:$A-$C\n")
    assert df.global_args == {"A": "1", "B": None, "C": "x y"}
    assert df.stages[0].base == "img:1-x y"


def test_multi_stage_names_and_copy_from() -> None:
    df = parse(
        "FROM golang:1.22 AS Build\n"  # 1
        "RUN go build -o /app\n"  # 2
        "FROM alpine as runtime\n"  # 3
        "COPY --from=build /app /app\n"  # 4
        "FROM runtime\n"  # 5
        "USER 65532\n"  # 6
    )
    assert [(s.position, s.name, s.base, s.line) for s in df.stages] == [
        (0, "build", "golang:1.22", 1),
        (1, "runtime", "alpine", 3),
        (2, None, "runtime", 5),
    ]
    assert [[i.keyword for i in s.instructions] for s in df.stages] == [
        ["FROM", "RUN"],
        ["FROM", "COPY"],
        ["FROM", "USER"],
    ]
    assert df.stages[1].instructions[1].flag("from") == "build"
    assert df.final is df.stages[2]


def test_comments_hold_inline_waivers() -> None:
    df = parse(
        "# syntax=docker/dockerfile:1\nFROM a\n# factorygate:waive df-healthcheck batch job, no server\nUSER 1\n"
    )
    assert df.comments == ((3, "factorygate:waive df-healthcheck batch job, no server"),)


# -- expand ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$A", "a"),
        ("${A}", "a"),
        ("x$A-y", "xa-y"),
        ("$A_B", ""),  # the name is A_B
        ("${A}_B", "a_B"),
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("${UNSET:-d}", "d"),
        ("${EMPTY:-d}", "d"),
        ("${EMPTY-d}", ""),
        ("${NONE-d}", "d"),  # declared without a value: unset
        ("${UNSET-d}", "d"),
        ("${A:-d}", "a"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${UNSET:-${A}-${B:-z}}", "a-z"),
        ("${V#*.}", "2.3"),
        ("${V##*.}", "3"),
        ("${V%.*}", "1.2"),
        ("${V%%.*}", "1"),
        ("${A:?required}", "a"),
        ("$", "$"),
        ("$1 $@ ${1}", "$1 $@ ${1}"),
        ("a\\$A", "a\\$A"),  # an escaped dollar is not substituted
        ("'$A' \"$A\"", "'a' \"a\""),  # quotes are kept
        ("${A", "${A"),  # not closed: kept
        ("${A:-x", "${A:-x"),
        ("no variables", "no variables"),
    ],
)
def test_expand(text: str, expected: str) -> None:
    env: dict[str, str | None] = {"A": "a", "B": None, "EMPTY": "", "NONE": None, "V": "1.2.3"}
    assert expand(text, env) == expected


def test_expand_is_bounded() -> None:
    env: dict[str, str | None] = {"A": "x" * 1000}
    started = time.perf_counter()
    out = expand("$A" * 200_000, env)
    assert time.perf_counter() - started < QUICK_S
    assert len(out) <= MAX_INSTRUCTION_CHARS
    deep = "${A:-" * 50_000 + "}" * 50_000
    started = time.perf_counter()
    assert isinstance(expand(deep, {}), str)
    assert time.perf_counter() - started < QUICK_S


# -- errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "line", "says"),
    [
        (b"FROM a\nRUN echo caf\xe9\n", 2, "invalid UTF-8"),
        (b"FROM a\nUSER 1\nRUN a\x00b\n", 3, "control character 0x00"),
        (b"FROM a\x1b[0m\n", 1, "control character 0x1b"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), 1, "not a text file"),
        (b"\xff\xfeF\x00R\x00O\x00M\x00", 1, "not a text file"),  # UTF-16
        (b"FROM a\nRUN b\n\xff", 3, "invalid UTF-8"),
    ],
)
def test_not_text(data: bytes, line: int, says: str) -> None:
    err = error(data)
    assert err.line == line
    assert says in err.message


@pytest.mark.parametrize(
    ("text", "line", "says"),
    [
        ("", None, "no FROM instruction"),
        ("\n\n# only comments\n", None, "no FROM instruction"),
        ("ARG A=1\n", None, "no FROM instruction"),
        ("RUN echo hi\nFROM a\n", 1, "instruction before FROM"),
        ("ARG A=1\n# c\n\nENV B=2\nFROM a\n", 4, "instruction before FROM"),
        ("# escape=`\nLABEL x=1 `\n  y=2\nFROM a\n", 2, "instruction before FROM"),
        ("FROM\n", 1, "FROM without an image"),
    ],
)
def test_malformed(text: str, line: int | None, says: str) -> None:
    err = error(text)
    assert err.line == line
    assert says in err.message


def test_size_limits() -> None:
    err = error(b"FROM a\n" + b"#" * MAX_DOCKERFILE_BYTES)
    assert "limit" in err.message
    assert err.line is None
    err = error(b"FROM a\nUSER 1\nRUN " + b"x" * MAX_INSTRUCTION_CHARS + b"\n")
    assert (err.line, err.message) == (3, f"instruction longer than {MAX_INSTRUCTION_CHARS:,} characters")
    # continuation lines count, and so do heredoc bodies
    assert error(b"FROM a\nRUN a \\\n" + b"b \\\n" * (MAX_INSTRUCTION_CHARS // 4)).line == 2
    assert error(b"FROM a\nRUN <<EOF\n" + b"line\n" * (MAX_INSTRUCTION_CHARS // 5) + b"EOF\n").line == 2
    # just under the limit is fine
    assert parse(b"FROM a\nRUN " + b"x" * (MAX_INSTRUCTION_CHARS - 10) + b"\n").stages


# -- the public corpus -------------------------------------------------------------------------------


def corpus_files() -> list[Path]:
    return sorted(Path(root) / name for root, _, names in os.walk(CORPUS) for name in names)


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not next to this checkout")
def test_corpus_parses_without_errors_and_fast() -> None:
    files = [(str(p), p.read_bytes()) for p in corpus_files() if p.is_file() and not p.is_symlink()]
    assert len(files) >= 400
    best = float("inf")
    for _ in range(3):  # the best of three: a shared CI machine is noisy
        started = time.perf_counter()
        results = [parse_dockerfile(data, path) for path, data in files]
        best = min(best, time.perf_counter() - started)
    errors = {r.path: r.message for r in results if isinstance(r, DockerfileError)}
    assert errors == {p: why for p, why in KNOWN_INVALID.items() if p in errors}, errors
    assert best < 0.5, f"the corpus took {best:.3f} s"  # about 0.05 s on a laptop
    parsed = [r for r in results if isinstance(r, Dockerfile)]
    assert sum(len(i.original.splitlines()) for d in parsed for i in instructions(d)) > 10_000
    # Every instruction's lines are in order and inside the file; stages are numbered.
    for (path, data), d in zip(files, results, strict=True):
        if not isinstance(d, Dockerfile):
            continue
        n_lines = data.count(b"\n") + 1
        previous = 0
        for ins in instructions(d):
            assert previous < ins.line <= ins.end_line <= n_lines, (path, ins)
            previous = ins.end_line
        assert [s.position for s in d.stages] == list(range(len(d.stages)))
        assert all(s.instructions[0].keyword == "FROM" for s in d.stages)


# -- hostile inputs ----------------------------------------------------------------------------------


def _noise(size: int, seed: bytes) -> bytes:
    return hashlib.shake_256(seed).digest(size)


# Generated at test time (some are big): name -> bytes.
HOSTILE: dict[str, Callable[[], bytes]] = {
    "binary-junk": lambda: _noise(1 << 20, b"junk"),
    "nul-bytes": lambda: bytes(1 << 20),
    "fifty-mib": lambda: b"FROM a\n" + b"RUN x\n" * (50 * (1 << 20) // 6),
    "unterminated-heredoc": lambda: b"FROM a\nRUN <<EOF\n" + b"echo\n" * 100_000,
    "unterminated-heredoc-at-eof": lambda: b"FROM a\nRUN <<-EOF cat <<EOT",
    "200k-continuation-lines": lambda: b"FROM a\nRUN echo \\\n" + b"\tb \\\n" * 200_000 + b"  && true\n",
    "200k-long-continuation-lines": lambda: b"FROM a\nRUN echo \\\n" + b"  && echo b \\\n" * 200_000 + b"  && true\n",
    "200k-glued-continuation-lines": lambda: b"FROM a\nRUN echo \\\n" + b"b\\\n" * 200_000 + b"c\n",
    "1m-escape-lines": lambda: b"FROM a\nRUN a \\\n" + b"\\\n" * 1_000_000,
    "5mib-line": lambda: b"FROM a\nRUN " + b"a " * (5 << 19) + b"\n",
    "900k-blanks": lambda: b"FROM a\nRUN a \\\n" + b" " * 900_000 + b"b\n",
    "many-heredocs": lambda: (
        b"FROM a\nRUN "
        + b" ".join(b"<<-E%d" % i for i in range(30_000))
        + b"\n"
        + b"".join(b"\tE%d\n" % i for i in range(30_000))
    ),
    "many-instructions": lambda: b"FROM a\n" + b"USER 1\n" * 1_000_000,
    "many-comments": lambda: b"FROM a\n" + b"#\n" * 3_000_000,
    "many-stages": lambda: b"ARG A=x\n" + b"FROM $A\n" * 500_000,
    "deep-json": lambda: b"FROM a\nCMD " + b"[" * 500_000 + b"]" * 500_000 + b"\n",
    "arg-doubling": lambda: b"ARG A=xxxxxxxx\n" + b"ARG A=$A$A\n" * 200 + b"FROM $A\n",
    "deep-arg": lambda: b"ARG A=" + b"${A:-" * 200_000 + b"}" * 200_000 + b"\nFROM a$A\n",
    "many-flags": lambda: b"FROM a\nCOPY " + b'--a="b" ' * 100_000 + b"x y\n",
    "quote-soup": lambda: b"FROM a\nRUN <<'" + b"\"'" * 300_000 + b"\n",
    "directive-blanks": lambda: b"# escape=" + b" " * 1_000_000 + b"`\nFROM a\n",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_input_is_answered_quickly(name: str) -> None:
    data = HOSTILE[name]()
    started = time.perf_counter()
    result = parse_dockerfile(data, name)
    elapsed = time.perf_counter() - started
    assert isinstance(result, Dockerfile | DockerfileError)
    assert elapsed < QUICK_S, f"{name}: {elapsed:.2f} s"
    if isinstance(result, DockerfileError):
        assert result.path == name
        assert result.message
        assert len(result.message) < 400


def test_hostile_answers() -> None:
    by_name = {name: make() for name, make in HOSTILE.items() if name != "fifty-mib"}
    assert "limit" in error(HOSTILE["fifty-mib"]()).message
    assert error(by_name["unterminated-heredoc"]).line == 2
    assert error(by_name["unterminated-heredoc-at-eof"]).line == 2
    assert error(by_name["5mib-line"]).line == 2
    assert error(by_name["1m-escape-lines"]).line == 2
    assert error(by_name["binary-junk"]).line == 1
    assert error(by_name["many-instructions"]).message == "more than 50,000 instructions"
    assert "comment lines" in error(by_name["many-comments"]).message
    assert "once substituted" in error(by_name["arg-doubling"]).message
    df = parse(by_name["200k-continuation-lines"])
    assert summary(df)[1][2:] == (2, 200_003)
    assert instructions(df)[1].args == "echo " + "b " * 200_000 + "&& true"
    assert error(by_name["200k-long-continuation-lines"]).line == 2
    assert parse(by_name["many-heredocs"]).stages[0].instructions[1].end_line == 30_002


# -- properties --------------------------------------------------------------------------------------

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]

DOCKERFILE_PIECES = [
    "FROM ", "from ", "alpine", " AS ", " as ", "build", "RUN ", "COPY ", "ADD ", "ARG ", "ENV ", "CMD ",
    "ONBUILD ", "USER ", "--from=build ", "--mount=type=cache,target=/x ", "--", "-", "=", "$A", "${A}",
    "${A:-x}", "${A:+y}", "${", "}", "A=1 ", "\\\n", "\\", "`\n", "`", "\n", "\r\n", "\r", " ", "\t",
    "# c\n", "#", "# escape=`\n", "# syntax=x\n", "<<EOF", "<<-EOF", "<<'EOF'", '<<"EOF"', "EOF\n",
    "\tEOF\n", "<<", '["a", "b"]', "[", "]", '"', "'", "\ufeff", "\u00a0", "\u2028", "\x85", "é",
]  # fmt: skip
dockerfileish = st.lists(st.sampled_from(DOCKERFILE_PIECES) | st.text(max_size=3), max_size=80).map("".join)


@settings(max_examples=500, deadline=None, suppress_health_check=SLOW_OK)
@given(st.binary(max_size=2048))
@example(b"\xef\xbb\xbf")
@example(b"FROM a\nRUN <<")
def test_never_raises_on_bytes(data: bytes) -> None:
    started = time.perf_counter()
    result = parse_dockerfile(data, "x")
    assert isinstance(result, Dockerfile | DockerfileError)
    assert time.perf_counter() - started < QUICK_S


@settings(max_examples=1500, deadline=None, suppress_health_check=SLOW_OK)
@given(dockerfileish)
@example("FROM a\nRUN <<EOF\n")
@example("# escape=`\nFROM a\nRUN a `\n`\n")
@example("FROM ${")
def test_never_raises_on_dockerfileish_text(text: str) -> None:
    for prefix in ("", "FROM a\n"):
        data = (prefix + text).encode("utf-8", "surrogatepass")
        result = parse_dockerfile(data, "x")
        assert isinstance(result, Dockerfile | DockerfileError)
        if isinstance(result, Dockerfile):
            lines = data.count(b"\n") + 1
            for ins in instructions(result):
                assert 1 <= ins.line <= ins.end_line <= lines
                assert ins.keyword == ins.keyword.upper()
                assert ins.args == ins.args.strip()
            assert all(1 <= line <= lines for line, _ in result.comments)


def reference_logical_lines(text: str) -> list[tuple[str, int, int]]:
    """Logical lines (joined text, first line, last line), line by line, as BuildKit reads them
    (no directives, no heredocs): the escape at a line's end continues it; empty and comment lines
    inside a continuation are dropped; pieces are joined with one space, or with nothing when the
    break splits a word."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(lines):
        first = lines[i].lstrip()
        if not first or first.startswith("#"):
            i += 1
            continue
        start, joined, space, continued = i, "", False, True
        k = i
        while continued and k < len(lines):
            line = lines[k]
            stripped = line.lstrip()
            if k > start and (not stripped or stripped.startswith("#")):
                k += 1
                continue
            body = stripped.rstrip(" \t")
            continued = body.endswith("\\")
            body = body[:-1] if continued else body
            core = body.rstrip()
            if core:
                if joined and (space or (k > start and stripped != line)):
                    joined += " "
                joined += core
                space = core != body
            else:
                space = True
            k += 1
        out.append((joined, start + 1, k if k > start else start + 1))
        i = k
    return out


line_piece = st.sampled_from(["RUN", "echo", "a", "b=c", "&&", "#x", "\\", "  ", "\t", " \\", "\\ ", "é", "\u00a0"])
physical_line = st.lists(line_piece, max_size=6).map("".join)


@settings(max_examples=1500, deadline=None, suppress_health_check=SLOW_OK)
@given(st.lists(physical_line, max_size=25))
@example(["RUN a\\", "b"])
@example(["RUN a \\", "", "# c", "  b\\", "c"])
@example(["RUN \\", "\\", "a"])
def test_logical_lines_match_the_line_by_line_reference(lines: list[str]) -> None:
    body = "\n".join(lines) + "\n"
    result = parse_dockerfile(("FROM a\n" + body).encode(), "x")
    expected = [(j, s + 1, e + 1) for j, s, e in reference_logical_lines(body)]
    if isinstance(result, DockerfileError):
        assert "before FROM" not in result.message
        return
    got = [(f"{i.keyword} {i.args}", i.line, i.end_line) for i in instructions(result)[1:]]
    # The reference keeps the keyword's case and the blanks after it: compare word by word.
    assert [(" ".join(g.split()).upper(), s, e) for g, s, e in got] == [
        (" ".join(j.split()).upper(), s, e) for j, s, e in expected if j.strip()
    ]
