"""The docs say what the code does (issues 8, 10 and 22): counts and line numbers, the flags,
the commands shown, the tables of changes, every link, and the Korean landing page's figures."""
import contextlib
import importlib.util
import io
import re
import shlex
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from cartpole_dqn import RECIPE, parse_args
from conftest import ROOT, SCRIPT

README = (ROOT / "README.md").read_text()
KOREAN = (ROOT / "docs" / "README.ko.md").read_text()
DOCS = {path: path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]}
SOURCE = SCRIPT.read_text()
LINES = SOURCE.splitlines()
MARK = "# Beyond the tutorial"
FIRST_PART = SOURCE.split(f"\n{MARK}\n")[0]


def prose(text):
    """The text without its link targets and addresses, which hold numbers of their own."""
    return re.sub(r"\]\([^)]*\)|https?://\S+", "]", text)


def sections(text):
    return re.findall(r"^## .*", text, re.M)


def section(text, number):
    """The text of the number-th `## ` section."""
    parts = re.split(r"^## .*\n", text, flags=re.M)
    return parts[number + 1]


def tables(text):
    """Each Markdown table as a list of rows, each a list of cells (header and rule left out)."""
    found, rows = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif rows:
            found.append([row for row in rows[2:]])
            rows = []
    return found


def commands(text):
    """The `python ...` commands shown, in shell blocks and in inline code."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    shown = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    shown += [" ".join(command.split()).split(" | ")[0]
              for command in re.findall(r"`(python [^`]+)`", text)]
    return {line for line in shown if line.startswith(("python ", "pip ", "bash "))}


def test_the_landing_pages_are_short_and_link_everything_in_docs():
    assert len(README.splitlines()) <= 200
    assert len(KOREAN.splitlines()) <= 200
    linked = set(re.findall(r"\]\((docs/[^)#]+)", README))
    assert {f"docs/{path.name}" for path in (ROOT / "docs").glob("*.md")} <= linked
    top = README[:README.index("## ")]
    assert "(docs/README.ko.md)" in top and "(docs/cartpole_dqn.ipynb)" in top
    assert "Korean" in top[top.index("Notebook"):], "the notebook is in Korean: say so"


def test_the_korean_landing_page_is_the_english_ones_twin():
    assert len(sections(KOREAN)) == len(sections(README))
    # The same tables, row for row, and the same code in them.
    ours, theirs = tables(README), tables(KOREAN)
    assert [len(t) for t in ours] == [len(t) for t in theirs]
    for english, korean in zip(ours, theirs):
        for row, translated in zip(english, korean):
            assert [re.findall(r"`[^`]+`", cell) for cell in row] == [
                re.findall(r"`[^`]+`", cell) for cell in translated], row
    assert commands(KOREAN) == commands(README)
    for command in ["pip install -r requirements.txt && python cartpole_dqn.py",
                    "pip install -r requirements.txt && python -m pytest tests"]:
        assert command in commands(KOREAN)


def numbers(text):
    return set(re.findall(r"\d+(?:\.\d+)?", prose(text)))


def test_the_korean_landing_pages_figures_are_the_english_ones():
    # Every number, with or without a decimal point, on one page is on the other.
    assert numbers(KOREAN) - numbers(README) == set()
    assert numbers(README) - numbers(KOREAN) == set()


def test_the_counts_and_line_numbers_are_the_files():
    first_part = len(FIRST_PART.rstrip("\n#= ").splitlines())
    where = {"lines in all": len(LINES), "first part": first_part,
             "Agent": LINES.index("class Agent():") + 1,
             "CartPole": LINES.index("class CartPole:") + 1, "mark": LINES.index(MARK) + 1}
    english = section(README, 1)
    assert re.findall(r"`cartpole_dqn.py`\]\(cartpole_dqn.py\), (\d+) lines", english) == [
        str(where["lines in all"])]
    assert re.findall(r"first (\d+)\s+lines", english) == [str(where["first part"])]
    assert re.findall(r"`class Agent` on line (\d+)", english) == [str(where["Agent"])]
    assert re.findall(r"`class CartPole` on line (\d+)", english) == [str(where["CartPole"])]
    assert re.findall(r"\(line (\d+)\)", english) == [str(where["mark"])]
    korean = section(KOREAN, 1)
    assert re.findall(r"한 파일, (\d+)줄", korean) == [str(where["lines in all"])]
    assert re.findall(r"앞의 (\d+)줄", korean) == [str(where["first part"])]
    assert re.findall(r"`class Agent`는 (\d+)번째 줄", korean) == [str(where["Agent"])]
    assert re.findall(r"`class CartPole`은 (\d+)번째 줄", korean) == [str(where["CartPole"])]
    assert re.findall(r"한 줄\((\d+)번째 줄\)", korean) == [str(where["mark"])]
    # The marked line is the only "Beyond the tutorial" in the file, so a search finds it.
    assert SOURCE.count("Beyond the tutorial") == 1
    # The `if __name__` block ends the file, as docs/changes.md says.
    block = LINES[LINES.index('if __name__ == "__main__":') + 1:]
    assert block and all(line.startswith("    ") for line in block)
    assert block[-1] == "    sys.exit(main())"


def help_text():
    with pytest.raises(SystemExit), contextlib.redirect_stdout(io.StringIO()) as usage:
        parse_args(["--help"])
    return usage.getvalue()


def test_every_flag_is_in_the_command_line_section_as_help_spells_it():
    spelled = {match.strip() for match in re.findall(r"^  (-.*?)(?:  |$)", help_text(), re.M)}
    flags = {spelling.split()[0] for spelling in spelled} - {"-h,"}
    for text, title in [(README, "## Command line"), (KOREAN, "## 명령줄 옵션")]:
        part = text[text.index(title):]
        part = part[:part.index("\n## ", 1)]
        assert {flag for flag in flags if f"`{flag}" not in part} == set(), title
        # The tables' first column spells each flag with its argument, as --help does.
        shown = {span for table in tables(part) for row in table
                 for span in re.findall(r"`(--[a-z][^`]*)`", row[0])}
        assert shown and {flag for flag in shown if flag not in spelled} == set(), (
            "spelled otherwise than --help does")
    assert ".h5" in help_text()


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_every_command_shown_parses(path):
    for command in commands(DOCS[path]):
        if command.startswith("python cartpole_dqn.py"):
            words = shlex.split(command)
            with contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    parse_args(words[2:])
                except SystemExit:
                    pytest.fail(f"{command}: {err.getvalue()}")
        elif command.startswith("python benchmarks/"):
            assert (ROOT / shlex.split(command)[1]).exists(), command
        elif command.startswith("bash "):
            assert (ROOT / shlex.split(command)[1]).exists(), command


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    text = "".join(c for c in text if c in " -" or unicodedata.category(c)[0] in "LN")
    return text.replace(" ", "-")


def anchors(text):
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return {slug(heading) for heading in re.findall(r"^#+ (.*)", text, re.M)}


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_every_relative_link_and_anchor_resolves(path):
    text = re.sub(r"```.*?```", "", DOCS[path], flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        file = (path.parent / target).resolve() if target else path
        assert file.exists(), f"{path.name}: {link}"
        if anchor:
            assert anchor in anchors(file.read_text()), f"{path.name}: {link}"


def test_slug_is_githubs():
    assert slug("What happens when...") == "what-happens-when"
    assert slug("One run of the tutorial's agent") == "one-run-of-the-tutorials-agent"
    assert slug("보기, 플레이, 녹화") == "보기-플레이-녹화"
    assert slug("Watch, play, record") == "watch-play-record"


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.name)
def test_no_lab_notebook_noise(path):
    text = prose(DOCS[path])
    assert not re.findall(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b", text), "a commit"
    assert not re.findall(r"previous version|earlier version|older version", text, re.I)


def change_rows(path, title):
    text = (ROOT / "docs" / path).read_text()
    start = text.index(title)
    return tables(text[start:text.index("\n## ", start) if "\n## " in text[start:] else None])[0]


TUTORIAL_TABLES = [("changes.md", "## What changed from the tutorial"),
                   ("changes.ko.md", "## 튜토리얼에서 바뀐 것")]


@pytest.mark.parametrize("path, title", TUTORIAL_TABLES)
def test_the_tutorial_table_is_the_codes_comments_one_for_one(path, title):
    # In the file's first part, in order: each `# Tutorial: `code`` comment is a row whose
    # first cell shows that code; each `# Not in the tutorial:` comment, a row that shows none.
    comments = re.findall(r"# (Tutorial: `[^`]+`|Not in the tutorial:)", FIRST_PART)
    rows = change_rows(path, title)
    assert len(rows) == len(comments)
    for comment, row in zip(comments, rows):
        if comment.startswith("Tutorial"):
            assert comment[len("Tutorial: "):] in re.findall(r"`[^`]+`", row[0]), (comment, row)
        else:
            assert "`" not in row[0], row


def test_the_second_sources_changes_each_have_a_row():
    for path, title in [("changes.md", "## What changed from the second source"),
                        ("changes.ko.md", "## 두 번째 자료에서 바뀐 것")]:
        table = " ".join(" ".join(row) for row in change_rows(path, title))
        snippets = re.findall(r"# Source: `([^`]+)`", SOURCE)
        assert snippets
        assert [s for s in snippets if f"`{s}`" not in table] == [], path


def test_the_recipe_shown_is_the_scripts():
    for text in (README, KOREAN, (ROOT / "docs" / "results.md").read_text()):
        assert RECIPE in " ".join(text.split())


def suite_size(session):
    """How many tests `python -m pytest tests` runs: this session's own count when it collected
    the whole folder, else a fresh collection (a few seconds: it loads TensorFlow)."""
    whole = [str(Path(arg).resolve()) for arg in session.config.args] == [str(ROOT / "tests")]
    if whole and not session.config.option.keyword and not session.config.option.markexpr:
        return [str(len(session.items))]
    collected = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                                str(ROOT / "tests")], capture_output=True, text=True,
                               cwd=ROOT, timeout=120).stdout
    return re.findall(r"^(\d+) tests? collected", collected, re.M) or [collected[-2000:]]


def test_the_test_count_is_the_suites(request):
    count = suite_size(request.session)
    assert re.findall(r"The (\d+) tests take", README) == count
    assert re.findall(r"테스트 (\d+)개는", KOREAN) == count


def test_the_odds_tables_are_odds_csvs():
    # benchmarks/odds.py's own table, made again from the CSV it wrote beside it.
    pytest.importorskip("scipy")
    spec = importlib.util.spec_from_file_location("odds", ROOT / "benchmarks" / "odds.py")
    odds = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(odds)
    rows = odds.markdown(odds.read(ROOT / "benchmarks" / "odds.csv"))[2:]
    assert len(rows) == 3
    results = (ROOT / "docs" / "results.md").read_text()
    for row in rows:
        assert row in results.splitlines()
        # The README's table shows the same cells (and the Korean one, as its twin).
        assert row.split(" | ", 1)[1] in README
