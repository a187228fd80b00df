"""Watching it learn on a real X server (Xvfb), not SDL's dummy driver (issue 14).

Each run is the real program in its own process on its own X server. A small harness counts
the frames it shows (pygame.display.flip) and takes a screenshot of the whole screen with xwd
at the 5th frame; the test then looks for the pole's colour in it.
"""
import ctypes
import os
import re
import signal
import statistics
import struct
import subprocess
import sys

import numpy as np
import pytest

from cartpole_dqn import Agent, Window, parse_args
from conftest import SCRIPT, cli_env, episode_scores, one_line_error, weights_in

POLE = (202, 152, 101)   # the colour Gymnasium paints CartPole's pole in

HARNESS = r"""
import json, os, subprocess, sys, time
sys.path.insert(0, os.path.dirname(sys.argv[1]))
import pygame
frames = []
show = pygame.display.flip

def flip():
    show()
    frames.append(time.perf_counter())
    if len(frames) == 5:
        with open("shot.xwd", "wb") as shot:
            subprocess.run(["xwd", "-root", "-silent"], stdout=shot, check=True)

pygame.display.flip = flip
# Count what the game did too: a frame for each reset and each step is drawing each once.
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
done = {"reset": 0, "step": 0}

def counting(name, method):
    def count(*args, **kwargs):
        done[name] += 1
        return method(*args, **kwargs)
    return count

CartPoleEnv.reset, CartPoleEnv.step = counting("reset", CartPoleEnv.reset), counting("step", CartPoleEnv.step)
import cartpole_dqn
try:
    status = cartpole_dqn.main(sys.argv[2:])
finally:
    with open("frames.json", "w") as f:
        json.dump(dict(frames=frames, **done), f)
sys.exit(status)
"""


def start(tmp_path, display, *args, script=SCRIPT):
    (tmp_path / "harness.py").write_text(HARNESS)
    env = {k: v for k, v in cli_env(DISPLAY=display).items() if not k.startswith("SDL_")}
    return subprocess.Popen([sys.executable, "harness.py", str(script), *map(str, args)],
                            cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for(run, prefix):
    """Read the run's lines until one starts with prefix; returns what was read."""
    out = ""
    for line in run.stdout:
        out += line
        if line.startswith(prefix):
            return out
    raise AssertionError(f"no line {prefix!r} in:\n{out}")


def finish(run, out=""):
    rest, err = run.communicate(timeout=120)
    return run.returncode, out + rest, err


def pole_pixels(path):
    """How many pixels of a screenshot (an XWD file, 24 or 32 bits a pixel) are the pole's."""
    raw = path.read_bytes()
    header = struct.unpack(">25I", raw[:100])
    size, width, height, byte_order, bits, per_line, colours = (
        header[0], header[4], header[5], header[7], header[11], header[12], header[19])
    step = bits // 8
    rows = np.frombuffer(raw, np.uint8, height * per_line, size + 12 * colours)
    pixels = rows.reshape(height, per_line)[:, :width * step].reshape(height, width, step)
    if byte_order == 0:   # least significant byte first: blue, green, red(, unused)
        pixels = pixels[..., 2::-1]
    else:
        pixels = pixels[..., step - 3:]
    return int(np.sum(np.all(pixels == POLE, axis=-1)))


def frames_in(tmp_path):
    import json
    return json.loads((tmp_path / "frames.json").read_text())


def assert_drawn_once_per_step_at_50_a_second(tmp_path):
    seen = frames_in(tmp_path)
    # One frame at each reset and one at each step: not two (the tutorial's line and
    # --render together), and not none (a window that shows nothing).
    assert seen["step"] >= 8 and len(seen["frames"]) == seen["reset"] + seen["step"], {
        name: len(value) if name == "frames" else value for name, value in seen.items()}
    # The game's clock holds the frames to 50 a second: 20 ms apart, whatever else runs.
    median = statistics.median(np.diff(seen["frames"]))
    assert 0.018 <= median <= 0.025, median


def test_render_shows_the_cart_and_trains_and_ctrl_c_saves(tmp_path, display):
    run = start(tmp_path, display, "--render", "--seed", 0, "--fresh", "--weights", "w.h5")
    out = wait_for(run, "Episode 3#")
    run.send_signal(signal.SIGINT)
    status, out, err = finish(run, out)
    assert status == 130 and err == "", err
    assert out.strip().splitlines()[-1] == "Weights saved to w.h5"
    assert pole_pixels(tmp_path / "shot.xwd") > 500, "no pole on the screen"
    assert_drawn_once_per_step_at_50_a_second(tmp_path)
    assert len(weights_in(tmp_path / "w.h5")) == 6


def uncommented(tmp_path, delete):
    """A copy of the script with the tutorial's render line uncommented, as a learner does:
    deleting `#`, or `# ` as an editor's toggle-comment does (one space, if there is one)."""
    text = SCRIPT.read_text()
    line = next(line for line in text.splitlines() if line.strip().endswith("self.env.render()")
                and line.strip().startswith("#"))
    at = line.index("#")
    edited = line[:at] + line[at + 1:] if delete == "#" else re.sub(r"# ?", "", line, count=1)
    path = tmp_path / "edited" / "cartpole_dqn.py"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace(line, edited))
    return path


@pytest.mark.parametrize("delete", ["#", "# "])
def test_uncommenting_the_tutorials_line_gives_valid_code_in_its_place(tmp_path, delete):
    edited = uncommented(tmp_path, delete).read_text()
    compile(edited, "cartpole_dqn.py", "exec")
    loop = edited[edited.index("while not done:"):edited.index("action = self.agent.act")]
    assert re.search(r"\n( +)# Tutorial: .*\n\1self\.env\.render\(\)\n\1$", loop), loop


def test_the_uncommented_line_shows_the_cart_drawing_each_step_once(tmp_path, display):
    script = uncommented(tmp_path, "#")
    run = start(tmp_path, display, "--episodes", 4, "--seed", 0, "--fresh", script=script)
    status, out, err = finish(run)
    assert status == 0, err
    assert pole_pixels(tmp_path / "shot.xwd") > 500, "no pole on the screen"
    assert_drawn_once_per_step_at_50_a_second(tmp_path)
    assert frames_in(tmp_path)["step"] == sum(episode_scores(out))


def top_level_windows(display):
    x = ctypes.CDLL("libX11.so.6")
    x.XOpenDisplay.restype = ctypes.c_void_p
    x.XDefaultRootWindow.restype = ctypes.c_ulong
    x.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    x.XQueryTree.argtypes = [ctypes.c_void_p, ctypes.c_ulong, *[ctypes.c_void_p] * 3,
                             ctypes.POINTER(ctypes.c_uint)]
    dpy = x.XOpenDisplay(display.encode())
    root, parent, children, count = ctypes.c_ulong(), ctypes.c_ulong(), ctypes.c_void_p(), ctypes.c_uint()
    x.XQueryTree(dpy, x.XDefaultRootWindow(dpy), ctypes.byref(root), ctypes.byref(parent),
                 ctypes.byref(children), ctypes.byref(count))
    windows = list(ctypes.cast(children, ctypes.POINTER(ctypes.c_ulong))[:count.value])
    return x, dpy, windows


class ClientMessage(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("serial", ctypes.c_ulong), ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p), ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong), ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5), ("pad", ctypes.c_long * 12)]


def press_close(display):
    """What a window manager sends a window whose close button is pressed: WM_DELETE_WINDOW."""
    x, dpy, windows = top_level_windows(display)
    x.XInternAtom.restype = ctypes.c_ulong
    x.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    x.XSendEvent.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_long,
                             ctypes.c_void_p]
    assert windows, "no window to close"
    for window in windows:
        event = ClientMessage(type=33, window=window, format=32,   # 33: ClientMessage
                              message_type=x.XInternAtom(dpy, b"WM_PROTOCOLS", 0))
        event.data[0] = x.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
        x.XSendEvent(dpy, window, 0, 0, ctypes.byref(event))
    x.XFlush(ctypes.c_void_p(dpy))


def test_the_line_and_render_together_draw_once_and_the_close_button_stops_the_run(
        tmp_path, display):
    script = uncommented(tmp_path, "# ")
    run = start(tmp_path, display, "--render", "--seed", 0, "--fresh", "--weights", "w.h5",
                script=script)
    out = wait_for(run, "Episode 3#")
    press_close(display)
    status, out, err = finish(run, out)
    assert status == 0, err
    assert out.strip().splitlines()[-2:] == ["The window was closed: stopping.",
                                             "Weights saved to w.h5"]
    assert pole_pixels(tmp_path / "shot.xwd") > 500, "no pole on the screen"
    assert_drawn_once_per_step_at_50_a_second(tmp_path)
    assert len(weights_in(tmp_path / "w.h5")) == 6


def test_play_render_shows_the_games(tmp_path, display):
    # A network of other sizes: the file says which, so --render needs no --hidden.
    Agent(4, 2, str(tmp_path / "cartpole_weight.h5"), hidden_layers=(48, 48)).save_model()
    run = start(tmp_path, display, "--play", 1, "--render", "--seed", 0)
    status, out, err = finish(run)
    assert status == 0, err
    assert pole_pixels(tmp_path / "shot.xwd") > 500, "no pole on the screen"
    assert_drawn_once_per_step_at_50_a_second(tmp_path)
    assert "Mean score over 1 games" in out


def test_no_display_is_one_line_for_render(main, monkeypatch, tmp_path):
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "cartpole_weight.h5").write_bytes(b"an old weight file")
    for args in (["--render"], ["--play", 1, "--render"]):
        line = one_line_error(*main(*args))
        assert "--render shows the cart in a window, and there is no display here" in line
        assert "--play N --video DIR" in line
    assert (tmp_path / "cartpole_weight.h5").read_bytes() == b"an old weight file"


def test_no_display_is_one_line_for_the_uncommented_line(cli, tmp_path):
    script = uncommented(tmp_path, "#")
    (tmp_path / "cartpole_weight.h5").write_bytes(b"an old weight file")
    env = {k: v for k, v in cli_env().items() if k not in ("DISPLAY", "WAYLAND_DISPLAY",
                                                            "SDL_VIDEODRIVER")}
    line = one_line_error(*(lambda r: (r.returncode, r.stdout, r.stderr))(
        cli(script=script, env=env)))
    assert line.startswith("error: self.env.render() shows the cart in a window")
    assert (tmp_path / "cartpole_weight.h5").read_bytes() == b"an old weight file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cartpole_weight.h5", "edited"]


def test_a_display_that_is_not_there_is_one_line(cli):
    free = next(n for n in range(600, 700) if not os.path.exists(f"/tmp/.X{n}-lock"))
    env = {k: v for k, v in cli_env(DISPLAY=f":{free}").items() if k != "SDL_VIDEODRIVER"}
    result = cli("--render", "--episodes", 1, env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Episode " not in result.stdout
    # SDL may print a line of its own before ours.
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --render found no display at DISPLAY=:{free}")


def test_the_tutorials_line_is_found_only_when_uncommented(monkeypatch):
    import cartpole_dqn
    assert not Window.line_uncommented()
    source = "    def run(self):\n        while True:\n            self.env.render()\n"
    monkeypatch.setattr(cartpole_dqn.inspect, "getsource", lambda function: source)
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    assert Window.mode(parse_args([])) == "human"
    assert Window.mode(parse_args(["--play", "1"]), training=False) is None
