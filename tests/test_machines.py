"""Every machine gives the same run: silent, and the same seed takes the same
path (issue 11). No test here depends on the CPU it runs on: where a check
needs another kind of CPU, it asks NumPy and OpenBLAS to run the code they
would pick on one."""
import subprocess
import sys

import numpy as np

from conftest import ROOT, SCRIPT, cli_env, episode_scores, weights_in


def test_a_run_prints_nothing_but_its_own_lines(cli):
    # A user who set nothing: cli_env() drops TF_CPP_MIN_LOG_LEVEL and
    # TF_ENABLE_ONEDNN_OPTS. On AVX-512 CPUs TensorFlow 2.21 would print its
    # oneDNN notice at every start, whatever TF_CPP_MIN_LOG_LEVEL said.
    trained = cli("--episodes", 3, "--seed", 0)
    assert trained.returncode == 0 and trained.stderr == "", trained.stderr
    assert trained.stdout.splitlines() == [
        *[line for line in trained.stdout.splitlines() if line.startswith("Episode ")][:3],
        "Weights saved to cartpole_weight.h5"]
    played = cli("--play", 1)
    assert played.returncode == 0 and played.stderr == "", played.stderr


def simulated_cpus():
    """Environments in which NumPy and OpenBLAS run the code they would pick on
    older CPUs than this one (OpenBLAS picks its kernels by CPU at start-up)."""
    try:
        from numpy._core import _multiarray_umath as umath
    except ImportError:   # NumPy 1.x
        from numpy.core import _multiarray_umath as umath
    here = " ".join(f for f in umath.__cpu_dispatch__ if umath.__cpu_features__.get(f))
    return {"AVX only (Sandy Bridge)": dict(OPENBLAS_CORETYPE="Sandybridge",
                                            NPY_DISABLE_CPU_FEATURES=here),
            "SSE3 only (Prescott)": dict(OPENBLAS_CORETYPE="Prescott",
                                         NPY_DISABLE_CPU_FEATURES=here)}


PREDICT = r"""
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import cartpole_dqn, keras, numpy as np
keras.utils.set_random_seed(0)
agent = cartpole_dqn.Agent(4, 2, "none.h5")
states = np.random.default_rng(0).normal(size=(3000, 1, 4)).astype(np.float32)
print(hashlib.sha256(b"".join(agent.predict(s).tobytes() for s in states)).hexdigest())
"""


def predict_digest(tmp_path, **env):
    run = subprocess.run([sys.executable, "-c", PREDICT, str(ROOT)], cwd=tmp_path,
                         env=cli_env(**env), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_act_and_replay_predict_the_same_bits_on_every_cpu(tmp_path):
    # Measured here: with NumPy's @ in the forward pass, each of these gave
    # other last bits (BLAS kernels add in other orders), and seed 0 took
    # another path from episode 1263 on.
    here = predict_digest(tmp_path)
    for name, env in simulated_cpus().items():
        assert predict_digest(tmp_path, **env) == here, name


def test_the_same_seed_takes_the_same_path_on_every_cpu(tmp_path):
    # A user who set nothing, against a run with oneDNN's kernels off by hand
    # and NumPy and OpenBLAS limited to AVX: on AVX-512 CPUs, TensorFlow's
    # oneDNN default alone changes the weights within 30 episodes.
    runs = []
    for i, env in enumerate([{}, dict(simulated_cpus()["AVX only (Sandy Bridge)"],
                                      TF_ENABLE_ONEDNN_OPTS="0")]):
        result = subprocess.run(
            [sys.executable, str(SCRIPT), "--episodes", "30", "--seed", "0", "--fresh",
             "--weights", f"w{i}.h5"],
            cwd=tmp_path, env=cli_env(**env), capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        runs.append((episode_scores(result.stdout), weights_in(tmp_path / f"w{i}.h5")))
    (scores, weights), (other_scores, other_weights) = runs
    assert scores == other_scores
    assert all(np.array_equal(a, b) for a, b in zip(weights, other_weights))
