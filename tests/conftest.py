"""Shared helpers: run cartpole_dqn.py as a user would, in a temporary folder."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "cartpole_dqn.py"
sys.path.insert(0, str(ROOT))
# Imported before any test imports Keras, so that this process loads TensorFlow
# with the script's settings, as a user's run does.
import cartpole_dqn  # noqa: E402,F401

# Settings that would make a run differ from a user's: the script chooses these.
USER_CHOICES = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")


def cli_env(**extra):
    """The environment of a user who set nothing, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if name not in USER_CHOICES}
    env.update(PYTHONUNBUFFERED="1", **extra)
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


def weights_in(path):
    """The weights in a weight file, read with h5py, in the network's order."""
    import h5py
    with h5py.File(path, "r") as f:
        group = f["model_weights"]
        return [group[layer][name][()] for layer in group.attrs["layer_names"]
                for name in group[layer].attrs["weight_names"]]
