"""Ctrl-C (SIGINT) and kill (SIGTERM) give one result, whenever they land (issue 11).

The result: the weights are saved (or, before training began, nothing is written), the last
line says which, the exit status is 130 or 143, and there is no traceback. Only in the first
seconds, while Python loads TensorFlow and before the script has begun, does a signal end it
as it ends any Python program.
"""
import concurrent.futures
import signal
import subprocess
import sys
import time

import numpy as np

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
    assert not (folder / "w.best.h5").exists() or trained


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
    # Inside a replay, in TensorFlow's own code: binding the arguments of a compiled
    # function, running it, converting its results.
    ("tutorial", "replay", "tensorflow", 9),
    ("target", "replay", "tensorflow", 40),
    # During the save, inside h5py.
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


def as_in_a_terminal():
    # Ctrl-C as a program started from a terminal gets it. A process started in the
    # background (`&` in a script, as CI may start this test run) ignores Ctrl-C, and its
    # children inherit that: a run would then ignore a Ctrl-C that lands before it starts.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def stop_after(folder, sig, seconds, episodes):
    """Start a training run; send `sig` seconds after the start, or at the first line of
    episode `episodes`; return how it ended."""
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--fresh", "--seed", "1",
                            "--weights", "w.h5"], cwd=folder, env=cli_env(), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           preexec_fn=as_in_a_terminal)
    out = ""
    if seconds is not None:
        time.sleep(seconds)
    else:
        for line in run.stdout:
            out += line
            if line.startswith(f"Episode {episodes}#"):
                break
    run.send_signal(sig)
    try:
        rest, err = run.communicate(timeout=60)
    finally:
        run.kill()   # a signal that was lost leaves a run training: end it
    return run.returncode, out + rest, err


def test_a_signal_at_any_moment_gives_one_result(tmp_path):
    # While Python loads the libraries, and once training runs (later in training: the
    # background job's test). Ctrl-C first: the first case sends SIGINT.
    moments = [(0.5, None), (None, 0)]
    for folder, sig, case, returncode, out, err in in_parallel(tmp_path, stop_after, moments):
        if "Episode 0#" in out:   # trained: saved and stopped
            assert case == moments[1], f"the signal at {case} was lost: {out[-300:]}"
            assert_stopped_cleanly(folder, sig, returncode, out, err)
        elif out:   # after the libraries loaded, before training: our own one line
            assert_stopped_cleanly(folder, sig, returncode, out, err, trained=False)
        else:
            # While Python loads TensorFlow the script has not started: the signal ends it as
            # it ends any Python program (for Ctrl-C, with Python's KeyboardInterrupt).
            assert returncode == -sig, err
            assert not (folder / "w.h5").exists()


def ignore_sigint():
    # What a shell does to a background job (`python cartpole_dqn.py &`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_ctrl_c_stops_a_background_job_too_and_keeps_its_log_and_plot(tmp_path):
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--fresh", "--seed", "1",
                            "--weights", "w.h5", "--log", "run.csv", "--plot", "run.png"],
                           cwd=tmp_path, env=cli_env(), text=True, preexec_fn=ignore_sigint,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # While Python loads TensorFlow, Ctrl-C is ignored, as by any background program.
    time.sleep(0.5)
    run.send_signal(signal.SIGINT)
    for line in run.stdout:
        if line.startswith("Episode 40#"):
            break
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert_stopped_cleanly(tmp_path, signal.SIGINT, run.returncode, out, err)
    # It holds trained weights, not the ones a fresh network starts with.
    fresh = Agent(4, 2, str(tmp_path / "none.h5"))
    assert not np.allclose(weights_in(tmp_path / "w.h5")[0], fresh.brain.get_weights()[0])
    with open(tmp_path / "run.csv") as log:
        assert len(log.readlines()) >= 1 + 41
    assert (tmp_path / "run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
