"""Nothing lost, ever: checkpoints, the best network, and a save that cannot be written (issue 16)."""
import errno
import os
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

import cartpole_dqn
from cartpole_dqn import Agent, CartPole, SaveError, parse_args
from conftest import SCRIPT, cli_env, episode_scores, one_line_error, weights_in


def test_kill_9_keeps_the_last_checkpoint_and_the_next_run_resumes_from_it(tmp_path, main):
    # Checkpoints every second here (--checkpoint-every), so that the test need not train
    # for a minute; `kill -9` comes once several have been written.
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--fresh", "--seed", "0",
                            "--checkpoint-every", "1", "--log", "run.csv"], cwd=tmp_path,
                           env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        rows = (tmp_path / "run.csv").read_text().splitlines() if (
            tmp_path / "run.csv").exists() else []
        if len(rows) > 2 and float(rows[-1].split(",")[4]) > 2.5:
            break
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL
    saved = tmp_path / "cartpole_weight.h5"
    assert saved.exists(), "no checkpoint was written during the run"
    keras.utils.set_random_seed(0)
    fresh = Agent(4, 2, str(tmp_path / "none.h5")).brain.get_weights()
    assert not all(np.array_equal(a, b) for a, b in zip(weights_in(saved), fresh)), "untrained"
    status, out, err = main("--play", 2)
    assert status == 0 and "Mean score over 2 games" in out, err
    status, out, err = main("--episodes", 1)   # resumes: a loaded brain explores little
    assert status == 0 and "exploration: 0.010" in out, err


def test_the_best_network_survives_a_resumed_run_that_diverges(tmp_path, main):
    status, out, err = main("--fresh", "--seed", 0, "--episodes", 160)
    assert status == 0, err
    best = tmp_path / "cartpole_weight.best.h5"
    with h5py.File(best, "r") as f:
        average = float(f.attrs["avg100"])
    averages = [float(line.split("avg100:")[1].split()[0]) for line in out.splitlines()
                if line.startswith("Episode ")]
    assert average == pytest.approx(max(averages[99:]), abs=0.051)   # printed to 0.1
    before = best.read_bytes()
    played = main("--play", 5, "--seed", 1, "--weights", best.name)
    # Resumed with a learning rate of 1, the network comes apart.
    status, out, err = main("--seed", 1, "--episodes", 120, "--learning-rate", 1)
    assert status == 0, err
    assert np.mean(episode_scores(out)[-100:]) < average
    assert best.read_bytes() == before
    assert main("--play", 5, "--seed", 1, "--weights", best.name) == played


@pytest.fixture(params=[0, 20], ids=["filled to the last byte", "room for half a file"])
def full_disk(tmp_path, request):
    """A folder on a small tmpfs, holding an old weight file and filled up but for
    request.param KB; None where this machine lets no test mount one. (HDF5, writing to a disk
    that fills up half-way through a file, crashed the whole process.)"""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(disk)],
                           capture_output=True) if shutil.which("mount") else None
    if not mount or mount.returncode:
        yield None
        return
    try:
        Agent(4, 2, str(disk / "cartpole_weight.h5")).save_model()
        with open(disk / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 1024)
            except OSError as error:
                assert error.errno == errno.ENOSPC
        os.truncate(disk / "filler", os.path.getsize(disk / "filler") - request.param * 1024)
        yield disk
    finally:
        umount = subprocess.run(["umount", str(disk)], capture_output=True, text=True)
    assert umount.returncode == 0, f"a file on the disk was left open: {umount.stderr}"


def test_a_full_disk_costs_no_training(tmp_path, cli, full_disk):
    if full_disk is None:
        pytest.skip("mount -t tmpfs is not allowed here (the ENOSPC tests below stand in)")
    old = (full_disk / "cartpole_weight.h5").read_bytes()
    (tmp_path / "tmp").mkdir()
    result = cli("--weights", "disk/cartpole_weight.h5", "--episodes", 3, "--seed", 0,
                 env=cli_env(TMPDIR=str(tmp_path / "tmp")))
    assert result.returncode == 74 and "Traceback" not in result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot write ") and "No space left on device" in line
    fallback = tmp_path / "tmp" / next((tmp_path / "tmp").iterdir()).name
    assert str(fallback) in line and "was left as it was" in line
    assert (full_disk / "cartpole_weight.h5").read_bytes() == old
    assert sorted(path.name for path in full_disk.iterdir()) == ["cartpole_weight.h5", "filler"]
    assert Agent(4, 2, str(fallback)).exploration_rate == 0.01, "the fallback loads"


def test_a_full_disk_under_log_or_plot_is_one_line_too(tmp_path, main, full_disk):
    if full_disk is None:
        pytest.skip("mount -t tmpfs is not allowed here")
    status, out, err = main("--weights", "w.h5", "--episodes", 3, "--seed", 0,
                            "--log", full_disk / "log.csv", "--plot", full_disk / "curve.png")
    line = one_line_error(status, out, err, code=74)
    assert "No space left on device" in line
    if line.startswith("error: cannot write --log"):   # not even the header: nothing trained
        assert "Episode " not in out and not (tmp_path / "w.h5").exists()
    else:   # the three rows, then the picture that does not fit; the weights are kept
        assert line.startswith("error: cannot write --plot") and "Weights saved to w.h5" in out
        assert len((full_disk / "log.csv").read_text().splitlines()) == 1 + 3
        assert Agent(4, 2, str(tmp_path / "w.h5")).exploration_rate == 0.01


@pytest.mark.skipif(not os.access("/dev/shm", os.W_OK), reason="HDF5 writes beside the file "
                    "where there is no /dev/shm; the full-disk test above covers it")
def test_a_save_that_fails_half_way_keeps_the_old_file_and_the_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(cartpole_dqn.tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = tmp_path / "w.h5"
    agent = Agent(4, 2, str(path))
    agent.save_model()
    before = path.read_bytes()
    agent.brain.set_weights([w + 1 for w in agent.brain.get_weights()])
    copy = shutil.copyfile

    def dies_half_way(memory, temporary):   # the copy from memory to the disk
        if str(tmp_path / "tmp") in temporary:
            return copy(memory, temporary)
        with open(temporary, "wb") as f:
            f.write(before[: len(before) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(shutil, "copyfile", dies_half_way)
    with pytest.raises(SaveError, match="No space left on device") as error:
        agent.save_model()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "temporary left"
    assert f".w.h5.{os.getpid()}.h5" not in os.listdir("/dev/shm"), "left in memory"
    [fallback] = (tmp_path / "tmp").iterdir()
    assert str(fallback) in str(error.value)
    for ours, kept in zip(agent.brain.get_weights(), weights_in(fallback)):
        np.testing.assert_array_equal(ours, kept)


def test_a_folder_replaced_during_the_run_and_a_fallback_that_fails_too(tmp_path, monkeypatch,
                                                                       capsys):
    (tmp_path / "sub").mkdir()
    cartpole = CartPole(parse_args(["--weights", str(tmp_path / "sub" / "w.h5"),
                                    "--episodes", "2", "--seed", "0"]))
    shutil.rmtree(tmp_path / "sub")   # Keras would make a removed folder again; not this one
    (tmp_path / "sub").write_text("a file where the folder was")
    monkeypatch.setattr(cartpole_dqn.tempfile, "tempdir", str(tmp_path / "sub" / "tmp"))
    with pytest.raises(SaveError) as error:
        cartpole.run()
    assert "(Not a directory) nor " + str(tmp_path / "sub" / "tmp" / "w-") in str(error.value)
    assert "these weights are lost" in str(error.value)
    assert "Weights saved" not in capsys.readouterr().out


def test_a_full_disk_at_a_checkpoint_is_one_line_and_status_74(main, tmp_path, monkeypatch):
    monkeypatch.setattr(cartpole_dqn.tempfile, "tempdir", str(tmp_path))

    def full(model, path, hidden_layers, average=None):
        if "fallback" not in os.path.abspath(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_atomically(model, path, hidden_layers, average)
    save_atomically = cartpole_dqn.save_atomically
    monkeypatch.setattr(cartpole_dqn, "save_atomically", full)
    monkeypatch.setattr(cartpole_dqn.tempfile, "tempdir", str(tmp_path / "fallback"))
    (tmp_path / "fallback").mkdir()
    line = one_line_error(*main("--episodes", 2, "--checkpoint-every", 0.001), code=74)
    assert "No space left on device" in line and "fallback" in line


def test_saving_never_changes_the_path_a_seed_takes(tmp_path, capsys):
    # Checkpoints and best-network writes happen on a timer, so they must not touch the
    # random generators the training draws from: with a checkpoint (and a best network
    # written) after every episode, the same seed takes the same path as with none.
    runs = []
    for every in (1000, 0.001):
        keras.utils.set_random_seed(0)
        cartpole = CartPole(parse_args(["--seed", "0", "--fresh", "--episodes", "104",
                                        "--checkpoint-every", str(every),
                                        "--weights", str(tmp_path / f"w{every}.h5")]))
        cartpole.run()
        runs.append((episode_scores(capsys.readouterr().out), cartpole.agent.brain.get_weights()))
    (scores, weights), (other_scores, other_weights) = runs
    assert (tmp_path / "w0.001.best.h5").exists()
    assert other_scores == scores
    assert all(np.array_equal(a, b) for a, b in zip(weights, other_weights))
