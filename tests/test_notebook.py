"""The notebook runs in a real Jupyter kernel, and the script behaves in one (issue 10)."""
import base64
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


def run(client, code, value="None", timeout=300):
    """Execute code in the kernel, then evaluate value there; return its repr.

    The value comes back in the kernel's reply itself (user_expressions), not
    as printed output, which travels on another channel than the reply.
    """
    reply = client.execute_interactive(code, user_expressions={"value": value},
                                       timeout=timeout)["content"]
    assert reply["status"] == "ok", reply
    result = reply["user_expressions"]["value"]
    assert result["status"] == "ok", result
    return result["data"]["text/plain"]


# What a kernel holds globally, and a script must leave as it found it.
STATE = ("[matplotlib.get_backend(), repr(signal.getsignal(signal.SIGINT)), "
         "repr(signal.getsignal(signal.SIGTERM)), sorted(os.environ.items())]")


def test_importing_and_running_the_script_in_a_kernel_changes_nothing_global(kernel, tmp_path):
    _, client = kernel
    before = run(client, f"import os, signal, sys, matplotlib; sys.path.insert(0, {str(ROOT)!r})",
                 STATE)
    after_import = run(client, "import cartpole_dqn as dqn", STATE)
    assert after_import == before
    after_run = run(client, "cp = dqn.CartPole(dqn.parse_args(['--episodes', '2', '--plot', "
                            "'curve.png', '--fresh'])); cp.run(); "
                            "dqn.learning_curve(cp.progress.history)", STATE)
    assert after_run == before
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"


def test_the_kernels_stop_button_keeps_the_training(kernel, tmp_path):
    manager, client = kernel
    run(client, f"import signal, sys; sys.path.insert(0, {str(ROOT)!r}); import cartpole_dqn as dqn")
    # stop_on_error=False: otherwise the kernel aborts the requests that reach
    # it just after this cell's error, and it sends the error before it starts
    # aborting, so the next cell here is cancelled or not depending on timing.
    cell = client.execute("cp = dqn.CartPole(dqn.parse_args(['--fresh', '--seed', '1']))\ncp.run()",
                          stop_on_error=False)
    printed = ""
    deadline = time.time() + 120
    while "Episode 30#" not in printed and time.time() < deadline:
        message = client.get_iopub_msg(timeout=60)
        if message["parent_header"].get("msg_id") == cell:
            printed += message["content"].get("text", "")
    manager.interrupt_kernel()   # what the stop button sends: SIGINT
    reply = client.get_shell_msg(timeout=120)["content"]
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    # The training was saved, the kernel lives on, and the signals are given
    # back. (The kernel sets its own SIGINT handler around each cell; SIGTERM
    # shows whether ours was left behind.)
    assert int(run(client, "", "cp.progress.history[-1]['episode']")) >= 30
    assert run(client, "", "signal.getsignal(signal.SIGTERM) is dqn.Stop.note") == "False"
    assert run(client, "loaded = dqn.Agent(4, 2, 'cartpole_weight.h5'); import numpy as np",
               "all(np.array_equal(a, b) for a, b in "
               "zip(loaded.brain.get_weights(), cp.agent.brain.get_weights()))") == "True"
