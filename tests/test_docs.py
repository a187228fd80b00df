"""The Korean README says what README.md says (issue 10)."""
import re

from conftest import ROOT

README = (ROOT / "README.md").read_text()
KOREAN = (ROOT / "docs" / "README.ko.md").read_text()


def commands(text):
    """The commands in a text's shell blocks, without their comments."""
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    return {line.split("  #")[0].strip() for block in blocks for line in block.splitlines()
            if line.strip() and not line.startswith("#")}


def test_the_korean_readme_shows_the_english_readmes_commands():
    assert commands(KOREAN) and commands(KOREAN) <= commands(README)
    for command in ["pip install -r requirements.txt && python cartpole_dqn.py",
                    "pip install -r requirements.txt && python -m pytest tests"]:
        assert command in commands(KOREAN)


def test_the_readme_links_the_korean_readme_and_the_notebook_at_its_top():
    top = README[:README.index("## ")]
    assert "(docs/README.ko.md)" in top and "(docs/cartpole_dqn.ipynb)" in top


def test_the_korean_readmes_figures_are_the_english_ones():
    # Every number with a decimal point in the Korean text appears in README.md;
    # so does every count of seconds ("초") or episodes ("에피소드").
    figures = set(re.findall(r"\d+\.\d+", KOREAN))
    assert figures and {f for f in figures if f not in README} == set()
    counts = set(re.findall(r"(\d+)(?:초|번째\s*에피소드|\s*에피소드)", KOREAN))
    english = set(re.findall(r"\d+", README))
    assert counts and counts - english == set()
