"""Training is never lost, and bad input gets one clear line (issues 5 and 11)."""
import os
import stat
import sys

import h5py
import keras
import pytest

from cartpole_dqn import Agent
from conftest import cli_env


def one_line_error(result):
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Episode " not in result.stdout, "it trained before failing"
    return lines[0]


def trained_file(path, inputs=4):
    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(24, activation="relu"),
                              keras.layers.Dense(24, activation="relu"), keras.layers.Dense(2)])
    model.save(path)
    return path.read_bytes()


def corrupt(path):
    path.write_bytes(b"these are not weights\n" * 10)


def truncated(path):
    whole = trained_file(path)
    path.write_bytes(whole[: len(whole) // 2])


def wrong_shape(path):
    # Other hidden layers resume (the file says their sizes); other inputs
    # cannot be CartPole's.
    trained_file(path, inputs=5)


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
    assert line.startswith("error: --video taken/videos: ") and line.endswith(
        "taken is a file, not a folder")


def test_video_without_moviepy(cli, tmp_path):
    trained_file(tmp_path / "cartpole_weight.h5")
    hide = tmp_path / "hide"
    (hide / "moviepy").mkdir(parents=True)
    (hide / "moviepy" / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
    result = cli("--play", 1, "--video", "videos", env=cli_env(PYTHONPATH=str(hide)))
    assert one_line_error(result) == "error: --video needs moviepy: pip install moviepy"
    assert not (tmp_path / "videos").exists() or not any((tmp_path / "videos").iterdir())


@pytest.fixture
def unwritable(tmp_path):
    """A folder that exists and cannot be written, even by root."""
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir(mode=0o500)
        return str(folder)
    if sys.platform.startswith("linux"):
        return "/sys"   # sysfs refuses new files to everyone
    pytest.skip("no folder here that root cannot write")


def folder(tmp_path):
    (tmp_path / "wdir").mkdir()
    return "wdir"


# (arguments, what the line must say). Each is refused before any training.
BAD_PATHS = [
    (["--weights", "wdir"], "--weights wdir is a folder; name a file in it, such as "
                            "wdir/cartpole_weight.h5"),
    (["--weights", "mymodel"], "use mymodel.h5"),
    (["--weights", "model.keras"], "use model.h5"),
    (["--weights", "MODEL.H5"], "use MODEL.h5"),
    (["--weights", "model.weights.h5"], "use a name like model.h5"),
    (["--weights", "/dev/null"], "--weights /dev/null exists and is not a regular file"),
    (["--log", "wdir"], "--log wdir is a folder; name a file in it, such as wdir/log.csv"),
    (["--plot", "wdir"], "--plot wdir is a folder; name a file in it, such as wdir/curve.png"),
    (["--plot", "curve"], "--plot curve: no extension; end the name in .png, .svg or .pdf"),
    (["--plot", "curve.xyz"], "--plot curve.xyz: matplotlib cannot write .xyz pictures"),
    (["--log", "no/such/folder/run.csv"], "--log no/such/folder/run.csv: cannot write in "),
    (["--log", "cartpole_weight.h5"], "--weights and --log name the same file"),
    (["--log", "run.png", "--plot", "run.png"], "--log and --plot name the same file"),
]


@pytest.mark.parametrize("args, says", BAD_PATHS)
def test_a_path_that_would_fail_later_is_refused_first(cli, tmp_path, args, says):
    folder(tmp_path)
    (tmp_path / "cartpole_weight.h5").write_bytes(b"an old weight file")
    line = one_line_error(cli(*args, "--episodes", 2))
    assert says in line
    assert (tmp_path / "cartpole_weight.h5").read_bytes() == b"an old weight file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cartpole_weight.h5", "wdir"]


@pytest.mark.parametrize("flag", ["--weights", "--log", "--plot"])
def test_a_folder_that_cannot_be_written_is_refused_first(cli, unwritable, flag):
    path = os.path.join(unwritable, {"--weights": "w.h5", "--log": "l.csv", "--plot": "p.png"}[flag])
    line = one_line_error(cli(flag, path, "--episodes", 2))
    assert line.startswith(f"error: {flag} {path}: cannot write in {unwritable}: ")


@pytest.mark.parametrize("video, says", [
    ("game.mp4", "--video game.mp4: --video takes a folder"),
    ("taken", "taken is a file, not a folder"),
])
def test_video_wants_a_folder(cli, tmp_path, video, says):
    trained_file(tmp_path / "cartpole_weight.h5")
    (tmp_path / "taken").write_text("a file")
    assert says in one_line_error(cli("--play", 1, "--video", video))


def test_a_video_folder_that_cannot_be_written(cli, tmp_path, unwritable):
    trained_file(tmp_path / "cartpole_weight.h5")
    line = one_line_error(cli("--play", 1, "--video", os.path.join(unwritable, "videos")))
    assert f"cannot write in {unwritable}" in line


@pytest.mark.parametrize("name", ["w.h5", "w.hdf5", "sub/w.h5"])
def test_the_weight_file_written_loads_in_the_next_run(cli, tmp_path, name):
    (tmp_path / "sub").mkdir()
    assert cli("--weights", name, "--episodes", 2, "--seed", 0).returncode == 0
    played = cli("--weights", name, "--play", 1)
    assert played.returncode == 0, played.stderr
    assert "Mean score over 1 games" in played.stdout


def test_a_save_keeps_the_files_mode(cli, tmp_path):
    assert cli("--episodes", 1, "--seed", 0).returncode == 0
    path = tmp_path / "cartpole_weight.h5"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, "a first save: a new file's mode"
    for mode in (0o600, 0o640, 0o444):
        os.chmod(path, mode)
        assert cli("--episodes", 1, "--seed", 0).returncode == 0
        assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_save_through_a_symbolic_link_updates_the_file_it_points_to(cli, tmp_path):
    assert cli("--episodes", 1, "--seed", 0, "--weights", "real.h5").returncode == 0
    before = (tmp_path / "real.h5").read_bytes()
    (tmp_path / "link.h5").symlink_to("real.h5")
    assert cli("--episodes", 2, "--seed", 1, "--weights", "link.h5").returncode == 0
    assert (tmp_path / "link.h5").is_symlink()
    assert (tmp_path / "real.h5").read_bytes() != before
