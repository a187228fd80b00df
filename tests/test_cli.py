"""End to end through the real command line, in a new process, in a temporary folder."""
import subprocess
import sys

import numpy as np

from cartpole_dqn import CartPole, parse_args
from conftest import SCRIPT, cli_env, episode_scores


def test_train_and_play_print_nothing_but_their_own_lines(cli, main, tmp_path):
    # A user who set nothing: cli_env() drops TF_CPP_MIN_LOG_LEVEL and TF_ENABLE_ONEDNN_OPTS.
    # On AVX-512 CPUs TensorFlow would print its oneDNN notice at every start.
    first = cli("--episodes", 20, "--seed", 0, "--fresh")
    assert first.returncode == 0 and first.stderr == "", first.stderr
    lines = first.stdout.splitlines()
    assert len(episode_scores(first.stdout)) == 20 and all(8 <= s <= 500 for s in
                                                          episode_scores(first.stdout))
    assert lines[20:] == ["Weights saved to cartpole_weight.h5"]
    assert (tmp_path / "cartpole_weight.h5").stat().st_size > 0

    status, out, err = main("--play", 3)   # the file a new process wrote loads here
    assert status == 0 and err == "", err
    assert len([line for line in out.splitlines() if line.startswith("Play ")]) == 3
    assert "Mean score over 3 games" in out


def test_output_read_by_head_ends_quietly_and_keeps_the_weights(tmp_path):
    # `python cartpole_dqn.py | head -1`: the reader leaves after one line.
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--seed", "0", "--fresh"], cwd=tmp_path,
                           env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert run.stdout.readline().startswith(b"Episode 0#")
    run.stdout.close()
    assert run.wait(timeout=120) == 141
    assert run.stderr.read() == b""
    assert (tmp_path / "cartpole_weight.h5").stat().st_size > 0


LEARN_EPISODES, LEARN_BAR = 500, 150


def test_it_learns(tmp_path, capsys):
    # Random play averages about 22 steps. Measured here, seed 0 first passes a last-100
    # average of 150 at episode 367 (about 6 s of training); --stop-at ends it there.
    import keras
    keras.utils.set_random_seed(0)
    cartpole = CartPole(parse_args(["--episodes", LEARN_EPISODES, "--seed", 0, "--fresh",
                                    "--stop-at", LEARN_BAR, "--weights", tmp_path / "w.h5"]))
    cartpole.run()
    out = capsys.readouterr().out
    assert "Solved: the last 100 episodes average" in out
    assert np.mean(episode_scores(out)[-100:]) >= LEARN_BAR


def test_target_agent_trains_plays_and_records(main, tmp_path):
    status, out, err = main("--agent", "target", "--episodes", 20, "--seed", 0, "--fresh")
    assert status == 0, err
    assert len(episode_scores(out)) == 20
    assert (tmp_path / "cartpole_weight.h5").stat().st_size > 0
    status, out, err = main("--agent", "target", "--play", 2, "--seed", 0, "--video", "videos")
    assert status == 0 and err == "", err
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["cartpole-episode-0.mp4", "cartpole-episode-1.mp4"]
    assert all(v.stat().st_size > 1000 for v in videos)
