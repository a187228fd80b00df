"""Shared helpers: run cartpole_dqn.py as a user would, in a process or in this one."""
import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "cartpole_dqn.py"
sys.path.insert(0, str(ROOT))
# Imported before anything else loads TensorFlow, so that this process loads it with the
# script's settings, as a user's run does.
import cartpole_dqn  # noqa: E402

# Settings that would make a run differ from a user's: the script chooses these.
USER_CHOICES = ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "ONEDNN_MAX_CPU_ISA")


@pytest.fixture(autouse=True)
def environment_kept():
    """Tests run the script's code in this process too, and it may set SDL's variables as a
    user's run does (SDL_VIDEODRIVER=dummy to record headless): each test gets the
    environment back, so that no later run in a new process inherits them."""
    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


def cli_env(**extra):
    """The environment of a user who set nothing, plus `extra`."""
    env = {name: value for name, value in os.environ.items() if name not in USER_CHOICES}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


@pytest.fixture
def cli(tmp_path):
    """Run the script with arguments in tmp_path, in a new process; returns the CompletedProcess."""
    def run(*args, timeout=300, env=None, script=SCRIPT):
        return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=tmp_path,
                              env=env or cli_env(), capture_output=True, text=True,
                              timeout=timeout)
    return run


@pytest.fixture
def main(tmp_path, monkeypatch):
    """Run the script's main() with arguments in tmp_path, in this process, where a separate
    process would show nothing more; returns (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)

    def run(*args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = cartpole_dqn.main([str(arg) for arg in args])
        return status, out.getvalue(), err.getvalue()
    return run


def one_line_error(status, out, err, code=2):
    """The one line of an error; status 2 stops the program before it trains anything."""
    assert status == code, out + err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert code != 2 or "Episode " not in out, "it trained before failing"
    return lines[0]


def episode_scores(stdout):
    """The scores of the `Episode n# Score: s ...` lines, in order."""
    return [int(line.split("Score:")[1].split()[0])
            for line in stdout.splitlines() if line.startswith("Episode ")]


def weights_in(path):
    """The weights in a weight file, read with h5py, in the network's order."""
    import h5py
    with h5py.File(path, "r") as f:
        group = f.get("model_weights", f)
        return [group[layer][name][()] for layer in group.attrs["layer_names"]
                for name in group[layer].attrs["weight_names"]]


@pytest.fixture
def display(tmp_path):
    """A real X server (Xvfb) of its own for one test; yields its DISPLAY."""
    if not shutil.which("Xvfb") or not shutil.which("xwd"):
        pytest.skip("needs a real X server and screenshots: apt-get install xvfb x11-apps")
    # Xvfb picks a display number nobody uses and writes it to the pipe (-displayfd).
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24",
                               "-nolisten", "tcp"], pass_fds=[write],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = int(pipe.readline())
    yield f":{number}"
    server.terminate()
    server.wait()


def pytest_collection_modifyitems(items):
    """The emulated-CPU test first: it waits some 45 s on one process under QEMU, and started
    last it would leave the other core idle at the end (tests/test_machines.py)."""
    items.sort(key=lambda item: item.name != "test_the_recipe_takes_the_same_path_on_an_older_cpu")
