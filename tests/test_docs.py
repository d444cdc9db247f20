"""The documentation is true to the code: every command shown in a ``bash`` block of the README
and of ``docs/`` parses with the command's real parser and names registered models, every option
of every command says what it does, every link leads somewhere, code that cites a documentation
section names one that exists, and the README's headline table is the generated one. Fast: no
command runs, nothing trains, no data is built."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import re
import shlex
import sys
from pathlib import Path

import pytest

from models import list_models

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import requote  # noqa: E402  (tools/requote.py, a script beside the package)

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINKED = [*PAGES, ROOT / "ARCHITECTURE.md", ROOT / "results" / "README.md"]
COMMANDS = sorted(p.stem for p in (ROOT / "bench" / "cli").glob("*.py") if p.stem != "__init__")
# commands whose unknown flags are bench.run flags, passed on to every run they make, and the
# bench.run flags each sets itself (--model from its --models; sweep's --cv-folds sets --folds)
PASSES_ON = {"suite": {"--model"}, "sweep": {"--model", "--folds"}}
# placeholders the pages use for a value the reader supplies
PLACEHOLDERS = {"N": "2", "K": "2", "S": "0", "G": "4", "P": "0.5", "F": "0.01"}


def parser_of(command: str) -> argparse.ArgumentParser:
    return importlib.import_module(f"bench.cli.{command}").build_parser()


def bash_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every logical line (continuations joined) in a bash block."""
    lines, out, inside, pending, start = page.read_text().splitlines(), [], False, "", 0
    for number, line in enumerate(lines, 1):
        if line.strip().startswith("```"):
            inside = line.strip() == "```bash" if not inside else False
            continue
        if not inside:
            continue
        if not pending:
            start = number
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    return out


def simple_commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line: comments dropped, split at ``&&``, ``;`` and ``|``."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, "#"
    commands, current = [], []
    for token in lexer:
        if token and set(token) <= set(";&|"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    commands.append(current)
    return [c[1:] if c and c[0] in ("do", "then") else c for c in commands if c]


def bench_invocations() -> list[tuple[str, str, list[str]]]:
    """``(where, command, argv)`` of every ``python -m bench.X`` and ``./run_all.sh`` line."""
    found = []
    for page in PAGES:
        for number, line in bash_blocks(page):
            for words in simple_commands(line):
                where = f"{page.relative_to(ROOT)}:{number}"
                if words[0] in ("python", "python3") and words[1:2] == ["-m"] \
                        and words[2].startswith("bench."):
                    found.append((where, words[2].removeprefix("bench."), words[3:]))
                elif words[0] == "./run_all.sh" and words[1:2] != ["test"]:
                    found.append((where, "suite", words[1:]))  # run_all.sh runs bench.suite
                elif words[0] == "tools/thread_grid.sh":  # JOBS CPUS, then bench.suite's
                    found.append((where, "suite", words[3:]))
    return found


INVOCATIONS = bench_invocations()


def registered_in(page: Path) -> set[str]:
    """Models that a ``python`` block of ``page`` registers (the plugin example)."""
    return set(re.findall(r'ModelConfig\(name="([^"]+)"', page.read_text()))


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """``parse_known_args`` with argparse's own error as an assertion, not an exit."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            return parser.parse_known_args(argv)
    except SystemExit:
        raise AssertionError(err.getvalue().strip().splitlines()[-1]) from None


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    strings = {s for a in parser._actions for s in a.option_strings}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                strings |= option_strings(sub)
    return strings


def all_parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from all_parsers(sub, f"{name} {sub_name}")


def test_the_pages_show_commands_of_every_kind_the_test_checks():
    commands = {command for _, command, _ in INVOCATIONS}
    assert {"run", "suite", "evaluate", "report", "sweep", "pairs", "list"} <= commands, commands
    assert any(where.startswith("README.md") and command == "suite" and not argv
               for where, command, argv in INVOCATIONS)  # ./run_all.sh itself


def test_every_command_module_builds_its_parser_without_running():
    for command in COMMANDS:
        assert isinstance(parser_of(command), argparse.ArgumentParser), command


@pytest.mark.parametrize("where,command,argv", INVOCATIONS,
                         ids=[f"{w}:{c}" for w, c, _ in INVOCATIONS])
def test_every_documented_command_parses_with_the_real_parser(where, command, argv):
    assert command in COMMANDS, f"{where}: python -m bench.{command} is no command"
    argv = [PLACEHOLDERS.get(word, word) for word in argv]
    parser = parser_of(command)
    try:
        args, rest = parse(parser, argv)
        known = option_strings(parser)
        if command in PASSES_ON:  # the flags the command does not know go to bench.run
            run_parser = parser_of("run")
            _, rest = parse(run_parser, rest)
            known |= option_strings(run_parser)
    except AssertionError as exc:
        raise AssertionError(f"{where}: python -m bench.{command} {shlex.join(argv)}: {exc}") from None
    assert not rest, f"{where}: python -m bench.{command}: unknown {rest}"
    # argparse accepts unambiguous prefixes (--epoch for --epochs); a page spells flags in full
    flags = {word.split("=", 1)[0] for word in argv if word.startswith("--")}
    assert flags <= known, f"{where}: python -m bench.{command}: not spelled in full {flags - known}"


@pytest.mark.parametrize("where,command,argv", INVOCATIONS,
                         ids=[f"{w}:{c}" for w, c, _ in INVOCATIONS])
def test_every_documented_model_name_is_registered(where, command, argv):
    page = ROOT / where.split(":")[0]
    known = set(list_models()) | registered_in(page) | {"all", "default"}
    for i, word in enumerate(argv):
        flag, _, value = word.partition("=")
        if flag not in ("--model", "--models"):
            continue
        value = value or argv[i + 1]
        for name in value.split(","):
            if ":" in name:  # path/to/file.py:NAME or package.module:NAME
                continue
            assert name in known, f"{where}: {flag} {name}: not a registered model"


def test_every_option_of_every_command_has_help_text():
    missing = []
    for command in COMMANDS:
        for name, parser in all_parsers(parser_of(command), f"bench.{command}"):
            for action in parser._actions:
                if isinstance(action, argparse._HelpAction):
                    continue
                if not (action.help or "").strip():  # argparse.SUPPRESS: hidden on purpose
                    missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}")
                if isinstance(action, argparse._SubParsersAction):
                    missing += [f"{name} {choice.dest}" for choice in action._choices_actions
                                if not (choice.help or "").strip()]
    assert not missing, f"options without help text: {missing}"


@pytest.mark.parametrize("command", sorted(PASSES_ON))
def test_help_lists_the_bench_run_options_a_command_passes_on(command):
    parser = parser_of(command)
    text = parser.format_help()
    own = option_strings(parser) | PASSES_ON[command]
    passed = [a for a in parser_of("run")._actions
              if a.option_strings and not own & set(a.option_strings)]
    assert "options passed on to python -m bench.run" in text
    for action in passed:
        assert re.search(rf"^\s+{re.escape(action.option_strings[0])}\b", text, re.M), \
            f"bench.{command} --help does not list {action.option_strings[0]}"
        if action.help:  # with bench.run's own words
            assert action.help.split()[0] in text


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def headings(page: Path) -> list[str]:
    text, inside, out = page.read_text().splitlines(), False, []
    for line in text:
        if line.strip().startswith("```"):
            inside = not inside
        elif not inside and line.startswith("#"):
            out.append(line.lstrip("#").strip())
    return out


@pytest.mark.parametrize("page", LINKED, ids=[str(p.relative_to(ROOT)) for p in LINKED])
def test_every_link_leads_to_a_file_and_its_heading(page):
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        assert file.exists(), f"{page.relative_to(ROOT)}: link {target}: no such file"
        if anchor:
            assert anchor in {slug(h) for h in headings(file)}, \
                f"{page.relative_to(ROOT)}: link {target}: no such heading"


def test_every_docs_page_is_linked_from_the_readme():
    readme = (ROOT / "README.md").read_text()
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"](docs/{page.name})" in readme, f"README does not link docs/{page.name}"


def test_code_that_cites_a_documentation_section_names_one_that_exists():
    cited = re.compile(r'\((README|docs/[\w-]+\.md),\s+"([^"]+)"')
    files = [p for d in ("bench", "models", "tests", "tools") for p in (ROOT / d).rglob("*")
             if p.suffix in (".py", ".sh")] + [ROOT / "ARCHITECTURE.md"]
    wrong = []
    for file in files:
        for doc, section in cited.findall(file.read_text()):
            section = " ".join(section.replace("#", " ").split())  # a comment's next line
            titles = [re.sub(r"`", "", h) for h in headings(ROOT / ("README.md" if doc == "README"
                                                                     else doc))]
            if not any(t.startswith(section) for t in titles):
                wrong.append(f"{file.relative_to(ROOT)}: {doc}, {section!r}")
    assert not wrong, f"citations of sections that do not exist: {wrong}"


def test_the_readme_headline_table_is_quoted_verbatim_from_the_generated_file():
    readme = (ROOT / "README.md").read_text()
    assert "results/busi-cpu/tables/table3_comparison.md" in dict(requote.quotes(readme))


def test_every_quoted_block_is_its_generated_file_verbatim():
    """Numbers on a page come from the results set: each ``<!-- quoted from PATH -->`` block
    equals the file (``python tools/requote.py`` refreshes them after a regeneration)."""
    stale = []
    for page in requote.pages(ROOT):
        for path, body in requote.quotes(page.read_text()):
            if body != requote.source_text(ROOT, path):
                stale.append(f"{page.relative_to(ROOT)}: {path}")
    assert not stale, f"quotes that differ from their files (run python tools/requote.py): {stale}"
    assert sum(len(requote.quotes(p.read_text())) for p in requote.pages(ROOT)) >= 9


def test_requote_rewrites_a_stale_block_and_leaves_the_rest_of_the_page(tmp_path):
    (tmp_path / "t.md").write_text("| a |\n|---|\n| 2 |\n\n")
    page = ("intro\n<!-- quoted from t.md -->\n| a |\n|---|\n| 1 |\n<!-- end of quote -->\n"
            "after 1\n")
    assert requote.requote(page, tmp_path) == page.replace("| 1 |", "| 2 |")
    with pytest.raises(ValueError, match="1 opening and 0 closing"):  # never swallowed
        requote.quotes("<!-- quoted from t.md -->\n| a |\n")


def test_the_readme_stays_short_and_starts_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    first = bash_blocks(ROOT / "README.md")[:2]
    assert [simple_commands(line)[0] for _, line in first] == [["./run_all.sh"],
                                                               ["./run_all.sh", "test"]]


def toml_blocks() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for block in re.findall(r"^```toml\n(.*?)^```", page.read_text(), flags=re.S | re.M):
            if "[project" not in block:  # a plugin's pyproject.toml, not a suite configuration
                found.append((str(page.relative_to(ROOT)), block))
    return found


def test_every_documented_suite_toml_is_read_by_the_suite(tmp_path):
    from bench.cli.suite import parse_args

    blocks = toml_blocks()
    assert blocks
    for where, block in blocks:
        config = tmp_path / "suite.toml"
        config.write_text(block)
        args, rest = parse_args(["--config", str(config)])  # unknown keys or wrong types: BenchError
        assert not rest, where
        for name in args.models.split(","):
            assert name in {"all", "default", *list_models()}, f"{where}: models {name}"
