"""Training is never lost, and bad input gets one clear line (issue 5)."""
import signal
import subprocess
import sys

import h5py
import keras
import numpy as np
import pytest

from cartpole_dqn import Agent
from conftest import SCRIPT, cli_env


def one_line_error(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Episode " not in result.stdout, "it trained before failing"
    return lines[0]


def ignore_sigint():
    # What a shell does to a background job (`python cartpole_dqn.py &`).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig, status, start", [(signal.SIGINT, 130, None),
                                                (signal.SIGTERM, 143, None),
                                                (signal.SIGINT, 130, ignore_sigint)])
def test_a_signal_during_training_saves_the_weights(tmp_path, sig, status, start):
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--fresh", "--seed", "1"],
                           cwd=tmp_path, env=cli_env(), text=True, preexec_fn=start,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in run.stdout:
        if line.startswith("Episode 40#"):
            break
    run.send_signal(sig)
    out, err = run.communicate(timeout=60)
    assert run.returncode == status, err
    assert "Traceback" not in err
    assert out.strip().splitlines()[-1] == "Weights saved to cartpole_weight.h5"
    loaded = Agent(4, 2, str(tmp_path / "cartpole_weight.h5"))
    assert loaded.exploration_rate == loaded.exploration_min
    # It holds trained weights, not the ones a fresh network starts with.
    keras.utils.set_random_seed(1)
    fresh = Agent(4, 2, str(tmp_path / "none.h5"))
    assert not np.allclose(loaded.brain.get_weights()[0], fresh.brain.get_weights()[0])


def trained_file(path, units=24):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(units, activation="relu"),
                              keras.layers.Dense(24, activation="relu"), keras.layers.Dense(2)])
    model.save(path)
    return path.read_bytes()


def corrupt(path):
    path.write_bytes(b"these are not weights\n" * 10)


def truncated(path):
    whole = trained_file(path)
    path.write_bytes(whole[: len(whole) // 2])


def wrong_shape(path):
    trained_file(path, units=32)


@pytest.mark.parametrize("spoil", [corrupt, truncated, wrong_shape])
@pytest.mark.parametrize("mode", [["--episodes", "3"], ["--play", "1"]])
def test_a_bad_weight_file_stops_with_one_line_and_is_left_alone(cli, tmp_path, spoil, mode):
    path = tmp_path / "cartpole_weight.h5"
    spoil(path)
    before = path.read_bytes()
    line = one_line_error(cli(*mode))
    assert "cartpole_weight.h5" in line and "--fresh" in line and "--weights" in line
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cartpole_weight.h5"]


def test_fresh_trains_over_a_bad_file(cli, tmp_path):
    corrupt(tmp_path / "cartpole_weight.h5")
    assert cli("--episodes", 2, "--fresh").returncode == 0
    with h5py.File(tmp_path / "cartpole_weight.h5") as f:
        assert "model_weights" in f


def test_a_missing_folder_is_found_before_training(cli):
    line = one_line_error(cli("--weights", "no/such/folder/w.h5"))
    assert "no/such/folder/w.h5" in line


def test_play_without_weights(cli):
    line = one_line_error(cli("--play", 2))
    assert "no weight file at cartpole_weight.h5" in line


@pytest.mark.parametrize("args", [["--episodes", "0"], ["--play", "-1"], ["--stop-at", "600"],
                                  ["--episodes", "ten"], ["--seed", "-3"]])
def test_arguments_out_of_range_are_usage_errors(cli, args):
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: ")
    assert f"argument {args[0]}" in result.stderr
    assert "Traceback" not in result.stderr


def test_render_without_a_display_is_one_line(cli):
    env = cli_env()
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("SDL_VIDEODRIVER", None)
    line = one_line_error(cli("--render", "--episodes", 1, env=env))
    assert "--render" in line and "display" in line


def test_render_with_a_display_that_is_not_there(cli):
    env = cli_env(DISPLAY=":99")
    env.pop("SDL_VIDEODRIVER", None)
    result = cli("--render", "--episodes", 1, env=env)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Episode " not in result.stdout
    # SDL itself may print a line of its own before ours.
    assert result.stderr.strip().splitlines()[-1] == "error: --render found no display at DISPLAY=:99"


def test_render_with_a_virtual_display_trains(cli, tmp_path):
    result = cli("--render", "--episodes", 2, "--seed", 0, env=cli_env(SDL_VIDEODRIVER="dummy"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("Episode ") == 2


def test_a_save_that_fails_half_way_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "w.h5"
    agent = Agent(4, 2, str(path))
    agent.save_model()
    before = path.read_bytes()

    def dies_half_way(temporary, *args, **kwargs):
        with open(temporary, "wb") as f:
            f.write(before[: len(before) // 2])
        raise OSError("disk full")
    monkeypatch.setattr(agent.brain, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        agent.save_model()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.h5"], "a temporary file was left"
    assert Agent(4, 2, str(path)).exploration_rate == 0.01


def test_video_into_a_folder_that_cannot_be_made(cli, tmp_path):
    trained_file(tmp_path / "cartpole_weight.h5")
    (tmp_path / "taken").write_text("a file, not a folder")
    line = one_line_error(cli("--play", 1, "--video", "taken/videos"))
    assert "cannot write taken/videos" in line


def test_video_without_moviepy(cli, tmp_path):
    trained_file(tmp_path / "cartpole_weight.h5")
    hide = tmp_path / "hide"
    (hide / "moviepy").mkdir(parents=True)
    (hide / "moviepy" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    result = cli("--play", 1, "--video", "videos", env=cli_env(PYTHONPATH=str(hide)))
    assert one_line_error(result) == "error: --video needs moviepy: pip install moviepy"
    assert not (tmp_path / "videos").exists() or not any((tmp_path / "videos").iterdir())
