"""Bad input gets one clear line, and a weight file is never damaged (issues 5 and 11).

These run main(), the command line's own entry, in this process: an exit status and a line
on stderr look the same here as from a new process, and cost no TensorFlow start-up."""
import os
import stat
import sys

import h5py
import keras
import pytest

from conftest import one_line_error


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
    # Other hidden layers resume (the file says their sizes); other inputs cannot be CartPole's.
    trained_file(path, inputs=5)


@pytest.mark.parametrize("spoil", [corrupt, truncated, wrong_shape])
@pytest.mark.parametrize("mode", [["--episodes", "3"], ["--play", "1"]])
def test_a_bad_weight_file_stops_with_one_line_and_is_left_alone(main, tmp_path, spoil, mode):
    path = tmp_path / "cartpole_weight.h5"
    spoil(path)
    before = path.read_bytes()
    line = one_line_error(*main(*mode))
    assert "cartpole_weight.h5" in line and "--fresh" in line and "--weights" in line
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cartpole_weight.h5"]


def test_fresh_trains_over_a_bad_file(main, tmp_path):
    corrupt(tmp_path / "cartpole_weight.h5")
    assert main("--episodes", 2, "--fresh")[0] == 0
    with h5py.File(tmp_path / "cartpole_weight.h5") as f:
        assert "model_weights" in f


def test_play_without_weights(main):
    line = one_line_error(*main("--play", 2))
    assert "no weight file at cartpole_weight.h5" in line


def test_video_into_a_folder_that_cannot_be_made(main, tmp_path):
    trained_file(tmp_path / "cartpole_weight.h5")
    (tmp_path / "taken").write_text("a file, not a folder")
    line = one_line_error(*main("--play", 1, "--video", "taken/videos"))
    assert line.startswith("error: --video taken/videos: ")


def test_video_without_moviepy(main, tmp_path, monkeypatch):
    trained_file(tmp_path / "cartpole_weight.h5")
    monkeypatch.setitem(sys.modules, "moviepy", None)   # as if it were not installed
    assert one_line_error(*main("--play", 1, "--video", "videos")) == (
        "error: --video needs moviepy: pip install moviepy")


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


# (arguments, what the line must say). Each is refused before any training.
BAD_PATHS = [
    (["--weights", "wdir"], "--weights wdir is not a file: name a file, such as "
                            "wdir/cartpole_weight.h5"),
    (["--weights", "mymodel"], "such as mymodel.h5"),
    (["--weights", "model.keras"], "such as model.h5"),
    (["--weights", "MODEL.H5"], "such as MODEL.h5"),
    (["--weights", "model.weights.h5"], "such as model.h5"),
    (["--weights", "/dev/null"], "--weights /dev/null is not a file"),
    (["--weights", "no/such/folder/w.h5"], "--weights no/such/folder/w.h5: cannot write in "),
    (["--log", "wdir"], "--log wdir is not a file: name a file, such as wdir/log.csv"),
    (["--plot", "wdir"], "--plot wdir is not a file: name a file, such as wdir/curve.png"),
    (["--plot", "curve"], "--plot curve: end the name in .png, .svg or .pdf"),
    (["--plot", "curve.xyz"], "--plot curve.xyz: end the name in .png, .svg or .pdf"),
    (["--log", "no/such/folder/run.csv"], "--log no/such/folder/run.csv: cannot write in "),
    (["--log", "cartpole_weight.h5"], "--weights, --log and --plot must name three different"),
    (["--log", "run.png", "--plot", "run.png"], "must name three different files"),
]


@pytest.mark.parametrize("args, says", BAD_PATHS)
def test_a_path_that_would_fail_later_is_refused_first(main, tmp_path, args, says):
    (tmp_path / "wdir").mkdir()
    (tmp_path / "cartpole_weight.h5").write_bytes(b"an old weight file")
    line = one_line_error(*main(*args, "--episodes", 2))
    assert says in line
    assert (tmp_path / "cartpole_weight.h5").read_bytes() == b"an old weight file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cartpole_weight.h5", "wdir"]


@pytest.mark.parametrize("flag", ["--weights", "--log", "--plot"])
def test_a_folder_that_cannot_be_written_is_refused_first(main, unwritable, flag):
    path = os.path.join(unwritable, {"--weights": "w.h5", "--log": "l.csv", "--plot": "p.png"}[flag])
    line = one_line_error(*main(flag, path, "--episodes", 2))
    assert line.startswith(f"error: {flag} {path}: cannot write in {unwritable}: ")


@pytest.mark.parametrize("video, says", [
    ("game.mp4", "--video game.mp4: --video takes a folder"),
    ("taken", "--video taken: "),
])
def test_video_wants_a_folder(main, tmp_path, video, says):
    trained_file(tmp_path / "cartpole_weight.h5")
    (tmp_path / "taken").write_text("a file")
    assert says in one_line_error(*main("--play", 1, "--video", video))


@pytest.mark.parametrize("name", ["w.h5", "w.hdf5", "sub/w.h5", "w.best.h5"])
def test_the_weight_file_written_loads_in_the_next_run(main, tmp_path, name):
    (tmp_path / "sub").mkdir()
    assert main("--weights", name, "--episodes", 2, "--seed", 0)[0] == 0
    status, out, err = main("--weights", name, "--play", 1)
    assert status == 0, err
    assert "Mean score over 1 games" in out


def test_a_save_keeps_the_files_mode(main, tmp_path):
    assert main("--episodes", 1, "--seed", 0)[0] == 0
    path = tmp_path / "cartpole_weight.h5"
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, "a first save: a new file's mode"
    for mode in (0o600, 0o640, 0o444):
        os.chmod(path, mode)
        assert main("--episodes", 1, "--seed", 0)[0] == 0
        assert stat.S_IMODE(path.stat().st_mode) == mode


def test_a_save_through_a_symbolic_link_updates_the_file_it_points_to(main, tmp_path):
    assert main("--episodes", 1, "--seed", 0, "--weights", "real.h5")[0] == 0
    before = (tmp_path / "real.h5").read_bytes()
    (tmp_path / "link.h5").symlink_to("real.h5")
    assert main("--episodes", 2, "--seed", 1, "--weights", "link.h5")[0] == 0
    assert (tmp_path / "link.h5").is_symlink()
    assert (tmp_path / "real.h5").read_bytes() != before
