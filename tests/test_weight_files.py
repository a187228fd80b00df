"""A weight file remembers how its network was built, a learner's own layers still work, and no
way of ending a run loses it (issue 24)."""
import contextlib
import errno
import importlib.util
import io
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import warnings

import gymnasium as gym
import h5py
import keras
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import cartpole_dqn
from cartpole_dqn import Agent, CartPole, Stop, Window, parse_args, record_video
from conftest import ROOT, SCRIPT, cli_env, one_line_error, weights_in
from test_checkpoints import full_disk  # noqa: F401 (a fixture)
from test_safety import trained_file

OLD_KERAS_FILE = ROOT / "tests" / "data" / "keras2_tutorial.h5"


def hidden_recorded(path):
    with h5py.File(path, "r") as f:
        return list(f.attrs["hidden_layers"])


def test_the_recipes_file_and_its_best_file_play_with_no_flag(main, tmp_path):
    # The issue's own case: train the recipe, then play with --play alone.
    assert main("--recipe", "--seed", 5, "--episodes", 5)[0] == 0
    assert hidden_recorded(tmp_path / "cartpole_weight.h5") == [64, 64]
    status, out, err = main("--play", 2)
    assert status == 0 and err == "" and "Mean score over 2 games" in out, err
    # A best file (after 100 episodes) records the same; other sizes, by --hidden, too.
    status, out, err = main("--hidden", 48, 48, "--episodes", 101, "--stop-at", 0, "--seed", 1,
                            "--weights", "small.h5", "--fresh")
    assert status == 0, err
    assert hidden_recorded(tmp_path / "small.best.h5") == [48, 48]
    for weights in ("small.h5", "small.best.h5"):
        status, out, err = main("--play", 1, "--weights", weights, "--video", f"videos-{weights}")
        assert status == 0 and err == "", err
    status, out, err = main("--episodes", 2, "--weights", "small.h5")   # resumes
    assert status == 0 and "exploration: 0.010" in out, err
    assert hidden_recorded(tmp_path / "small.h5") == [48, 48]


@pytest.mark.parametrize("asked, recorded", [(["--hidden", 32, 32], [64, 64]),
                                             (["--recipe"], [24, 24])])
def test_a_flag_that_contradicts_the_file_stops_in_one_line(main, tmp_path, asked, recorded):
    Agent(4, 2, str(tmp_path / "w.h5"), hidden_layers=tuple(recorded)).save_model()
    before = (tmp_path / "w.h5").read_bytes()
    for mode in (["--play", 1], ["--episodes", 2]):
        line = one_line_error(*main("--weights", "w.h5", *asked, *mode))
        sizes = " ".join(map(str, recorded))
        assert f"w.h5 holds a network with hidden layers {sizes}" in line
        assert "--weights PATH" in line and "--fresh" in line and f"--hidden {sizes}" in line
    assert (tmp_path / "w.h5").read_bytes() == before
    assert main("--weights", "w.h5", *asked, "--episodes", 1, "--fresh")[0] == 0


# A learner's first experiment: _build_model, edited in the file itself.
EDITS = {
    "one more layer after the loop": (
        "            model.add(Dense(units, activation='relu'))\n",
        "            model.add(Dense(units, activation='relu'))\n"
        "        model.add(Dense(12, activation='tanh'))\n"),
    "another activation": ("model.add(Dense(units, activation='relu'))",
                           "model.add(Dense(units, activation='sigmoid'))"),
}


@pytest.mark.parametrize("edit", EDITS)
def test_a_learners_edited_build_model_trains_resumes_and_plays(main, tmp_path, edit, monkeypatch):
    old, new = EDITS[edit]
    text = SCRIPT.read_text()
    assert text.count(old) == 1
    path = tmp_path / "edited" / "cartpole_dqn.py"
    path.parent.mkdir()
    path.write_text(text.replace(old, new))
    spec = importlib.util.spec_from_file_location("edited_cartpole_dqn", path)
    edited = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(edited)
    monkeypatch.setattr(cartpole_dqn, "main", edited.main)   # the fixture's main() runs it
    for hidden in ([], ["--hidden", 32, 32]):
        weights = f"w{len(hidden)}.h5"
        assert main("--episodes", 3, "--seed", 0, "--weights", weights, *hidden)[0] == 0
        status, out, err = main("--episodes", 2, "--weights", weights)   # resumes, no flag
        assert status == 0 and "exploration: 0.010" in out, err
        status, out, err = main("--play", 1, "--weights", weights)
        assert status == 0 and "Mean score over 1 games" in out, err
        sizes = [w.shape for w in weights_in(tmp_path / weights)][::2]
        units = [32, 32] if hidden else [24, 24]
        extra = [12] if "layer" in edit else []
        assert [shape[1] for shape in sizes] == units + extra + [2]


def test_files_with_no_record_load_as_before(main, tmp_path):
    # The tutorial's own file, written by Keras 2 (tf-keras 2.21) with the tutorial's code.
    shutil.copy(OLD_KERAS_FILE, tmp_path / "cartpole_weight.h5")
    status, out, err = main("--play", 2)
    assert status == 0 and err == "", err
    agent = Agent(4, 2, str(tmp_path / "cartpole_weight.h5"))
    for loaded, stored in zip(agent.brain.get_weights(), weights_in(OLD_KERAS_FILE)):
        np.testing.assert_array_equal(loaded, stored)
    assert main("--episodes", 2)[0] == 0, "and resumes"
    # An older file of other sizes, which records none: the sizes it was trained with load it,
    # and without them the line names them.
    trained = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64, activation="relu"),
                                keras.layers.Dense(64, activation="relu"), keras.layers.Dense(2)])
    trained.save(tmp_path / "old.h5")
    assert main("--play", 1, "--weights", "old.h5", "--hidden", 64, 64)[0] == 0
    line = one_line_error(*main("--play", 1, "--weights", "old.h5"))
    assert "its hidden layers are 64 64" in line and "--hidden 64 64" in line


def test_a_network_that_cannot_be_built_stops_in_one_line(cli, tmp_path):
    # A typo: 4e12 numbers a layer, more memory than any machine here has.
    (tmp_path / "cartpole_weight.h5").write_bytes(b"an old weight file")
    result = cli("--hidden", 1000000, 1000000, "--fresh")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the network does not fit in this machine's memory")
    assert "--hidden" in line and "Episode" not in result.stdout
    assert (tmp_path / "cartpole_weight.h5").read_bytes() == b"an old weight file"


@pytest.mark.parametrize("full_disk", [0], indirect=True, ids=["filled to the last byte"])
def test_a_video_on_a_full_disk_is_one_line(main, tmp_path, full_disk):
    if full_disk is None:
        pytest.skip("mount -t tmpfs is not allowed here")
    Agent(4, 2, str(tmp_path / "w.h5")).save_model()
    status, out, err = main("--play", 2, "--weights", "w.h5", "--video", full_disk / "videos")
    line = one_line_error(status, out, err, code=74)
    assert "cannot write the video" in line and "No space left on device" in line
    assert list((full_disk / "videos").iterdir()) == [], "no broken video left"


def start_in_a_terminal(folder, *args):
    """The script in a new session whose controlling terminal is a real pseudo-terminal, as a
    shell in a terminal window starts it; returns the process and the terminal's other end.
    util-linux's setsid makes the session (pty.fork would fork this multi-threaded process)."""
    if shutil.which("setsid") is None:
        pytest.skip("no setsid (util-linux) to give the script a terminal of its own")
    terminal, its_end = os.openpty()
    process = subprocess.Popen(["setsid", "--ctty", sys.executable, str(SCRIPT), *args],
                               stdin=its_end, stdout=its_end, stderr=its_end, cwd=folder,
                               env=cli_env())
    os.close(its_end)
    return process, terminal


def test_closing_the_terminal_saves_the_training(tmp_path):
    process, terminal = start_in_a_terminal(tmp_path, "--fresh", "--seed", "1",
                                            "--weights", "w.h5")
    shown, deadline = b"", time.time() + 120
    while b"Episode 30#" not in shown and time.time() < deadline:
        if select.select([terminal], [], [], 1)[0]:
            shown += os.read(terminal, 4096)
    assert b"Episode 30#" in shown, shown[-500:]
    os.close(terminal)   # the window closes: the kernel hangs up the terminal (SIGHUP)
    assert process.wait(timeout=60) == 129
    # No checkpoint came in those seconds (one a minute): the file is the `finally`'s save.
    keras.utils.set_random_seed(1)
    fresh = Agent(4, 2, str(tmp_path / "none.h5")).brain.get_weights()
    saved = weights_in(tmp_path / "w.h5")
    assert not all(np.array_equal(a, b) for a, b in zip(saved, fresh)), "untrained"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")
def test_nohup_keeps_the_hang_up_ignored():
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)   # what nohup does
    try:
        with Stop():
            assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with Stop():
            assert signal.getsignal(signal.SIGHUP) == Stop.note
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGHUP, before)


def test_gymnasiums_checker_passes_on_every_environment_the_script_makes(tmp_path, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")   # a window, but its drawing is not the point
    weights = ["--weights", str(tmp_path / "w.h5")]
    environments = [
        CartPole(parse_args(weights)).env,                                  # training
        CartPole(parse_args([*weights, "--render"])).env,                   # --render
        Window.wrap(gym.make("CartPole-v1", render_mode="human")),          # --play N --render
        record_video(gym.make("CartPole-v1", render_mode="rgb_array"),      # --video, notebook
                     str(tmp_path / "videos")),
    ]
    assert [type(env).__name__ for env in environments[1:]] == ["Window", "Window", "Recorder"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # its notes on CartPole's own infinite bounds
        for env in environments:
            check_env(env)
            env.close()


class ClosedTerminal(io.StringIO):
    """A terminal that closes at the 5th line: its writes fail, as the kernel fails them (EIO)."""
    def write(self, text):
        if self.getvalue().count("\n") >= 5:
            raise OSError(errno.EIO, "Input/output error")
        return super().write(text)


def test_a_print_into_a_closed_terminal_is_the_hang_up_and_saves(tmp_path, monkeypatch):
    # The window closes while a line is printed, before SIGHUP's handler has run: the print
    # fails first (seen once in CI as exit 1), and the run must end as the hang-up does.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cartpole_dqn, "silence", lambda *streams: None)   # this process's own
    with contextlib.redirect_stdout(ClosedTerminal()):
        status = cartpole_dqn.main(["--episodes", "50", "--seed", "1", "--weights", "w.h5"])
    assert status == 129
    assert weights_in(tmp_path / "w.h5"), "the finally's save"
