"""Every machine gives the same run: the same seed takes the same path (issue 11).

No test here depends on the CPU it runs on: where a check needs another kind of CPU, it asks
NumPy and OpenBLAS to run the code they would pick on one, or runs the script on an emulated
one (QEMU)."""
import shutil
import subprocess
import sys

import numpy as np

from conftest import SCRIPT, cli_env, episode_scores, weights_in


def simulated_cpus():
    """Environments in which NumPy and OpenBLAS run the code they would pick on older CPUs
    than this one (OpenBLAS picks its kernels by CPU at start-up)."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:   # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    here = " ".join(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f))
    # SSE3 only, as on a Prescott; and oneDNN off by hand, as a user who set nothing has it.
    return [dict(OPENBLAS_CORETYPE="Prescott", NPY_DISABLE_CPU_FEATURES=here,
                 TF_ENABLE_ONEDNN_OPTS="0")]


def test_the_same_seed_takes_the_same_path_on_every_cpu(tmp_path, main):
    # Measured here: with NumPy's @ in the forward pass, the simulated CPUs' last bits
    # differed (BLAS kernels add in other orders), and seed 0 took another path from episode
    # 1263 on; on AVX-512 CPUs, TensorFlow's oneDNN default alone changes the weights within
    # 30 episodes. Bit for bit equal weights after 20 episodes (about 18 replays) show that
    # every sum was the same. The first run is a user's who set nothing.
    runs = []
    for i, env in enumerate([{}, *simulated_cpus()]):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--episodes", "20", "--seed", "0", "--fresh",
             "--weights", f"w{i}.h5"],
            cwd=tmp_path, env=cli_env(**env), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        runs.append((episode_scores(result.stdout), weights_in(tmp_path / f"w{i}.h5")))
    # And in this process, where TensorFlow runs with its own threads on every CPU, as in a
    # notebook (the command line keeps to one CPU and one thread: keep_to_one_cpu).
    status, out, err = main("--episodes", 20, "--seed", 0, "--fresh", "--weights", "here.h5")
    assert status == 0, err
    runs.append((episode_scores(out), weights_in(tmp_path / "here.h5")))
    (scores, weights), *others = runs
    for other_scores, other_weights in others:
        assert other_scores == scores
        assert all(np.array_equal(a, b) for a, b in zip(weights, other_weights))


def test_the_recipe_takes_the_same_path_on_an_older_cpu(tmp_path, main):
    # The recipe's batched fits run matrix products that oneDNN does inside TensorFlow's own
    # kernels, in code it picks by CPU. Measured here: left to pick, this machine (AVX-512)
    # and an emulated Sandy Bridge (AVX, no AVX2 or FMA) parted in the last bits within 10
    # episodes. The script caps it at AVX (ONEDNN_MAX_CPU_ISA), which every CPU TensorFlow
    # runs on has. Sandy Bridge is older than any CPU this test may run on, so it can fail
    # on all of them.
    qemu = shutil.which("qemu-x86_64")
    if qemu is None:
        import pytest
        pytest.skip("no qemu-x86_64 to emulate an older CPU: apt-get install qemu-user")
    args = ["--recipe", "--episodes", "10", "--seed", "0", "--fresh", "--weights"]
    emulated = subprocess.Popen(
        [qemu, "-cpu", "SandyBridge", sys.executable, str(SCRIPT), *args, "emulated.h5"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Here, meanwhile, in this process: it imported the script before TensorFlow, as a run does.
    status, _, err = main(*args, "here.h5")
    assert status == 0, err
    out, err = emulated.communicate(timeout=600)
    assert emulated.returncode == 0, err[-2000:]
    there, here = (weights_in(tmp_path / f"{name}.h5") for name in ("emulated", "here"))
    assert here and all(np.array_equal(a, b) for a, b in zip(here, there))


def test_the_command_line_keeps_to_one_cpu_and_one_thread_each():
    # A graph's ops wait on another CPU's thread otherwise (docs/speed.md). What a run from the
    # command line does before TensorFlow starts its threads, in a fresh process.
    import os
    if not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2:
        import pytest
        pytest.skip("one CPU here: nothing to keep to")
    code = ("import os, sys; sys.path.insert(0, sys.argv[1]); import cartpole_dqn as d; "
            "d.keep_to_one_cpu(); import tensorflow as tf; tf.constant(1.0) + 1; "
            "threads = tf.config.threading; print(len(os.sched_getaffinity(0)), "
            "threads.get_inter_op_parallelism_threads(), "
            "threads.get_intra_op_parallelism_threads())")
    result = subprocess.run([sys.executable, "-c", code, str(SCRIPT.parent)], env=cli_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["1", "1", "1"], result.stderr
