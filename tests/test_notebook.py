"""The notebook runs in a real Jupyter kernel, with a live curve, and the script behaves in
one (issues 10 and 17)."""
import base64
import collections
import re
import shutil
import time

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from conftest import ROOT, cli_env

NOTEBOOK = ROOT / "docs" / "cartpole_dqn.ipynb"


class CountingClient(NotebookClient):
    """nbclient, counting the updates of displays in place, cell by cell."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.updates = collections.Counter()

    def process_message(self, msg, cell, cell_index):
        if msg["msg_type"] == "update_display_data":
            self.updates[cell_index] += 1
        return super().process_message(msg, cell, cell_index)


def text_lines(outputs):
    return "".join(o.get("text", "") if o.output_type == "stream" else
                   o.get("data", {}).get("text/plain", "") + "\n"
                   for o in outputs if "image/png" not in o.get("data", {})).splitlines()


def test_the_notebook_runs_top_to_bottom_with_live_curves_and_a_video(tmp_path, monkeypatch):
    # A copy in a folder of its own, beside a copy of the script, as after a clone: the
    # notebook finds ../cartpole_dqn.py. Only the budget changes: enough episodes for a few
    # seconds of training, so that the curve is redrawn while the cells run.
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "cartpole_dqn.py", tmp_path)
    for name, value in cli_env(CARTPOLE_EPISODES="151", SDL_VIDEODRIVER="dummy").items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = CountingClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path / "docs")}})
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # Everything is installed here (TensorFlow as tensorflow-cpu): nothing is.
    assert "설치한 것: 없음" in text
    training = [i for i, cell in enumerate(notebook.cells)
                if cell.cell_type == "code" and ".run()" in cell.source]
    assert len(training) == 2
    for index in training:
        cell = notebook.cells[index]
        pictures = [o for o in cell.outputs if "image/png" in o.get("data", {})]
        assert len(pictures) == 1, "one picture, redrawn in place"
        assert base64.b64decode(pictures[0].data["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"
        lines = text_lines(cell.outputs)
        assert 2 <= len(lines) <= 5, lines
        assert not [line for line in lines if line.startswith("Episode ") and "#" in line]
        assert re.match(r"Episode \d+  score \d+  avg100 [\d.]+  exploration", lines[0]), lines
        assert lines[-1].startswith("Weights saved to ")
        # Several redraws while it ran, each one of the picture and one of the status line.
        assert client.updates[index] >= 4, client.updates
    assert (tmp_path / "docs" / "recipe.best.h5").exists()
    html = "".join(o.data.get("text/html", "") for o in outputs if "data" in o)
    videos = re.findall(r'src="data:video/mp4;base64,([^"]+)"', html)
    assert len(videos) == 1
    assert base64.b64decode(videos[0])[4:8] == b"ftyp", "an MP4 file"


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    for name, value in cli_env().items():
        monkeypatch.setenv(name, value)
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    yield manager, client
    client.stop_channels()
    manager.shutdown_kernel(now=True)


def run(client, code, value="None", timeout=300):
    """Execute code in the kernel, then evaluate value there; return its repr.

    The value comes back in the kernel's reply itself (user_expressions), not as printed
    output, which travels on another channel than the reply.
    """
    reply = client.execute_interactive(code, user_expressions={"value": value},
                                       timeout=timeout, output_hook=lambda msg: None)["content"]
    assert reply["status"] == "ok", reply
    result = reply["user_expressions"]["value"]
    assert result["status"] == "ok", result
    return result["data"]["text/plain"]


# What a kernel holds globally, and the script must leave as it found it: the backend, the
# signal handlers, pyplot's figures, and the environment but for the two settings
# TensorFlow reads, which the script gives a value where the user gave none.
STATE = ("[matplotlib.get_backend(), repr(signal.getsignal(signal.SIGINT)), "
         "repr(signal.getsignal(signal.SIGTERM)), plt.get_fignums(), sorted((k, v) for k, v "
         "in os.environ.items() if k not in ('TF_ENABLE_ONEDNN_OPTS', 'TF_CPP_MIN_LOG_LEVEL'))]")


def test_importing_and_running_the_script_in_a_kernel_changes_nothing_global(kernel, tmp_path):
    _, client = kernel
    before = run(client, "import os, signal, sys, matplotlib, matplotlib.pyplot as plt; "
                         f"sys.path.insert(0, {str(ROOT)!r})", STATE)
    assert run(client, "import cartpole_dqn as dqn", STATE) == before
    assert run(client, "", "os.environ['TF_ENABLE_ONEDNN_OPTS']") == "'0'"
    after_run = run(client, "cp = dqn.CartPole(dqn.parse_args(['--episodes', '2', '--plot', "
                            "'curve.png', '--fresh'])); cp.run()", STATE)
    assert after_run == before
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_the_kernels_stop_button_keeps_the_training_and_its_curve(kernel, tmp_path):
    manager, client = kernel
    run(client, f"import signal, sys; sys.path.insert(0, {str(ROOT)!r}); import cartpole_dqn as dqn")
    # stop_on_error=False: otherwise the kernel aborts the requests that reach it just after
    # this cell's error, and it sends the error before it starts aborting, so the next cell
    # here is cancelled or not depending on timing.
    cell = client.execute("cp = dqn.CartPole(dqn.parse_args(['--fresh', '--seed', '1']))\ncp.run()",
                          stop_on_error=False)
    shown, deadline = [], time.time() + 120
    while len(shown) < 3 and time.time() < deadline:   # the curve is showing and growing
        message = client.get_iopub_msg(timeout=60)
        if message["parent_header"].get("msg_id") == cell and "image/png" in message[
                "content"].get("data", {}):
            shown.append(message["msg_type"])
    assert shown == ["display_data", "update_display_data", "update_display_data"], shown
    manager.interrupt_kernel()   # what the stop button sends: SIGINT
    reply = client.get_shell_msg(timeout=120)["content"]
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    # The training was saved, the kernel lives on, and the signals are given back. (The
    # kernel sets its own SIGINT handler around each cell; SIGTERM shows whether ours was
    # left behind.)
    assert int(run(client, "", "cp.progress.history[-1]['episode']")) >= 30
    assert run(client, "", "signal.getsignal(signal.SIGTERM) is dqn.Stop.note") == "False"
    assert run(client, "loaded = dqn.Agent(4, 2, 'cartpole_weight.h5'); import numpy as np",
               "all(np.array_equal(a, b) for a, b in "
               "zip(loaded.brain.get_weights(), cp.agent.brain.get_weights()))") == "True"
