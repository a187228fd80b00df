"""Shared helpers: run cartpole_dqn.py as a user would, in a temporary folder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "cartpole_dqn.py"
sys.path.insert(0, str(ROOT))


def cli_env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


@pytest.fixture
def cli(tmp_path):
    """Run the script with arguments in tmp_path; returns the CompletedProcess."""
    def run(*args, timeout=600, env=None):
        return subprocess.run(
            [sys.executable, str(SCRIPT), *map(str, args)], cwd=tmp_path,
            env=env or cli_env(), capture_output=True, text=True, timeout=timeout)
    return run


def episode_scores(stdout):
    """The scores of the `Episode n# Score: s ...` lines, in order."""
    return [int(line.split("Score:")[1].split()[0])
            for line in stdout.splitlines() if line.startswith("Episode ")]
