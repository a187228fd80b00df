"""The notebook runs in a real Jupyter kernel, and the script behaves in one (issue 10)."""
import base64
import json
import re
import shutil
import time

import nbformat
import pytest
from jupyter_client.manager import start_new_kernel
from nbclient import NotebookClient

from conftest import ROOT, cli_env

NOTEBOOK = ROOT / "docs" / "cartpole_dqn.ipynb"


def test_the_notebook_runs_top_to_bottom_and_shows_a_curve_and_a_video(tmp_path, monkeypatch):
    # A copy in a folder of its own, beside a copy of the script, as after a
    # clone: the notebook finds ../cartpole_dqn.py. Only the budget changes.
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "cartpole_dqn.py", tmp_path)
    for name, value in cli_env(CARTPOLE_EPISODES="3", SDL_VIDEODRIVER="dummy").items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "docs")}}).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # Everything is installed here (TensorFlow as tensorflow-cpu): nothing is.
    assert "설치한 것: 없음" in text
    assert "Episode 2# Score:" in text and "Weights saved to tutorial.h5" in text
    assert "Weights saved to recipe.h5" in text and "Mean score over 3 games" in text
    pngs = [o.data["image/png"] for o in outputs if "image/png" in o.get("data", {})]
    assert len(pngs) == 2, "a learning curve for each agent"
    assert all(base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n" for png in pngs)
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


def run(client, code, timeout=300):
    """Execute code in the kernel; return (its reply, what it printed)."""
    printed = []
    reply = client.execute_interactive(
        code, timeout=timeout,
        output_hook=lambda m: printed.append(m["content"].get("text", "")))
    return reply["content"], "".join(printed)


STATE = ("import json, os, signal, sys, matplotlib; print(json.dumps([matplotlib.get_backend(), "
         "repr(signal.getsignal(signal.SIGINT)), repr(signal.getsignal(signal.SIGTERM)), "
         "sorted(os.environ.items())]))")


def test_importing_and_running_the_script_in_a_kernel_changes_nothing_global(kernel, tmp_path):
    _, client = kernel
    reply, before = run(client, f"import sys; sys.path.insert(0, {str(ROOT)!r})\n{STATE}")
    assert reply["status"] == "ok"
    reply, _ = run(client, "import cartpole_dqn as dqn")
    assert reply["status"] == "ok", reply
    _, after_import = run(client, STATE)
    assert json.loads(after_import) == json.loads(before)
    reply, _ = run(client, "cp = dqn.CartPole(dqn.parse_args(['--episodes', '2', '--plot', "
                           "'curve.png', '--fresh'])); cp.run(); dqn.learning_curve(cp.progress.history)")
    assert reply["status"] == "ok", reply
    _, after_run = run(client, STATE)
    assert json.loads(after_run) == json.loads(before)
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_the_kernels_stop_button_keeps_the_training(kernel, tmp_path):
    manager, client = kernel
    run(client, f"import sys; sys.path.insert(0, {str(ROOT)!r}); import cartpole_dqn as dqn")
    cell = client.execute("cp = dqn.CartPole(dqn.parse_args(['--fresh', '--seed', '1']))\ncp.run()")
    printed = ""
    deadline = time.time() + 120
    while "Episode 30#" not in printed and time.time() < deadline:
        message = client.get_iopub_msg(timeout=60)
        if message["parent_header"].get("msg_id") == cell:
            printed += message["content"].get("text", "")
    manager.interrupt_kernel()   # what the stop button sends: SIGINT
    reply = client.get_shell_msg(timeout=120)["content"]
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    # The training was saved, the kernel lives on, and its handler is back.
    reply, out = run(client, "import signal; print(cp.progress.history[-1]['episode'], "
                             "signal.getsignal(signal.SIGINT) is dqn.Stop.note)")
    episodes, ours = out.split()
    assert int(episodes) >= 30 and ours == "False"
    reply, out = run(client, "loaded = dqn.Agent(4, 2, 'cartpole_weight.h5'); "
                             "import numpy as np; print(all(np.array_equal(a, b) for a, b in "
                             "zip(loaded.brain.get_weights(), cp.agent.brain.get_weights())))")
    assert out.strip() == "True", reply
