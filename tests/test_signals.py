"""Ctrl-C (SIGINT) and kill (SIGTERM) give one result, whenever they land (issue 11).

The result: the weights are saved (or, before training began, nothing is
written), the last line says which, the exit status is 130 or 143, and there
is no traceback.
"""
import concurrent.futures
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from cartpole_dqn import Agent
from conftest import ROOT, SCRIPT, cli_env, weights_in

STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
SAVED = "Weights saved to w.h5"
NOT_STARTED = "Stopped before it started: nothing was trained or written"


def assert_stopped_cleanly(folder, sig, returncode, out, err, trained=True):
    assert returncode == STATUS[sig], err
    assert err == "", err
    last = out.strip().splitlines()[-1]
    if trained:
        assert last == SAVED, out[-500:]
        # A whole file that loads, with trained numbers in it.
        loaded = Agent(4, 2, str(folder / "w.h5"))
        assert loaded.exploration_rate == loaded.exploration_min
    else:
        assert last == NOT_STARTED, out[-500:]
        assert not (folder / "w.h5").exists()
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [], "temporary file left"


# Runs the real main(), with a profiling hook that sends the signal from inside
# library code: on the nth call into a file whose path holds `where`, counted
# from the first call of cartpole_dqn's function `after`.
HARNESS = r"""
import os, signal, sys
sys.path.insert(0, sys.argv[1])
import cartpole_dqn
sig, after, where, nth = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
armed, calls = False, 0

def hook(frame, event, arg):
    global armed, calls
    if event != "call":
        return
    code = frame.f_code
    if not armed:
        armed = code.co_name == after and code.co_filename == cartpole_dqn.__file__
        return
    if where in code.co_filename:
        calls += 1
        if calls == nth:
            sys.setprofile(None)
            os.kill(os.getpid(), sig)

sys.setprofile(hook)
sys.exit(cartpole_dqn.main(sys.argv[6:]))
"""


# (agent, after, where, nth): the moment the hook fires.
INSIDE = [
    # Inside a replay, in TensorFlow's own code: binding the arguments of a
    # compiled function, running it, converting its results.
    ("tutorial", "replay", "tensorflow", 1),
    ("tutorial", "replay", "tensorflow", 9),
    ("tutorial", "replay", "tensorflow", 80),
    ("target", "replay", "tensorflow", 3),
    ("target", "replay", "tensorflow", 40),
    # During the save, inside Keras and inside h5py.
    ("tutorial", "save_model", "keras", 5),
    ("tutorial", "save_model", "h5py", 20),
    ("target", "save_model", "h5py", 3),
]


def stop_inside(folder, sig, agent, after, where, nth):
    run = subprocess.run(
        [sys.executable, "-c", HARNESS, str(ROOT), str(int(sig)), after, where, str(nth),
         "--agent", agent, "--fresh", "--seed", "1", "--weights", "w.h5", "--episodes",
         "3" if after == "save_model" else "100000"],
        cwd=folder, env=cli_env(), capture_output=True, text=True, timeout=300)
    return run.returncode, run.stdout, run.stderr


def in_parallel(tmp_path, call, cases):
    """call(folder, sig, *case) for each case, two at a time, SIGINT and SIGTERM in turn."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        jobs = []
        for i, case in enumerate(cases):
            folder = tmp_path / f"run{i}"
            folder.mkdir()
            sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
            jobs.append((folder, sig, case, pool.submit(call, folder, sig, *case)))
        return [(folder, sig, case, *job.result()) for folder, sig, case, job in jobs]


def test_a_signal_inside_library_code_is_handled(tmp_path):
    for folder, sig, case, returncode, out, err in in_parallel(tmp_path, stop_inside, INSIDE):
        assert "Episode 0#" in out, f"{case}: the hook fired before training"
        assert_stopped_cleanly(folder, sig, returncode, out, err)


def stop_after(folder, sig, seconds, episodes):
    """Start a training run; send `sig` seconds after the start, or at the
    first line of episode `episodes`; return how it ended."""
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--fresh", "--seed", "1",
                            "--weights", "w.h5"], cwd=folder, env=cli_env(), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if seconds is not None:
        time.sleep(seconds)
        out = ""
    else:
        out = ""
        for line in run.stdout:
            out += line
            if line.startswith(f"Episode {episodes}#"):
                break
    run.send_signal(sig)
    rest, err = run.communicate(timeout=120)
    return run.returncode, out + rest, err


def test_a_signal_at_any_moment_gives_the_same_result(tmp_path):
    # While Python and TensorFlow load, while the model is built, and all
    # through training: moments the program does not choose.
    moments = [(s, None) for s in (0.3, 1.5, 3.0, 4.5)]
    moments += [(None, e) for e in (0, 1, 4, 11, 30, 70, 120, 200)]
    trained = 0
    for folder, sig, case, returncode, out, err in in_parallel(tmp_path, stop_after, moments):
        started = "Episode 0#" in out
        trained += started
        assert_stopped_cleanly(folder, sig, returncode, out, err, trained=started)
    assert trained >= 8


def ignore_sigint():
    # What a shell does to a background job (`python cartpole_dqn.py &`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_stops_a_background_job_too(tmp_path):
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--fresh", "--seed", "1",
                            "--weights", "w.h5"], cwd=tmp_path, env=cli_env(), text=True,
                           preexec_fn=ignore_sigint, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE)
    for line in run.stdout:
        if line.startswith("Episode 40#"):
            break
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert_stopped_cleanly(tmp_path, signal.SIGINT, run.returncode, out, err)
    # It holds trained weights, not the ones a fresh network starts with.
    fresh = Agent(4, 2, str(tmp_path / "none.h5"))
    assert not np.allclose(weights_in(tmp_path / "w.h5")[0], fresh.brain.get_weights()[0])
