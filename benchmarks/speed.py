"""How fast are the agents' calls, against the tutorial's Keras calls?

Run by hand, not by CI:  python benchmarks/speed.py
Times, in one process and on the same network, the tutorial's replay loop
(model.predict, model.predict, model.fit per sample) against Agent.replay(32),
and model.predict(state) against Agent.act(state), and prints medians and
ratios. Then the recipe's (--recipe) cost per replay (sample, targets, gradient
steps and the soft update), and the environment steps per second of a whole
training run of it, learning included. Last, what keeping the training costs: a
checkpoint (every 60 s of training), a write of the best network (at most every
5 s), and a redraw of the notebook's live curve (about every second), each as a
share of the time between two of them.
"""
import contextlib
import io
import os
import random
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# First, so that TensorFlow loads with the script's settings, and runs on one CPU, as a run
# from the command line does (keep_to_one_cpu), before it starts its threads.
from cartpole_dqn import Agent, CartPole, Curve, keep_to_one_cpu, parse_args, save  # noqa: E402
keep_to_one_cpu()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def median_ms(call, repeats):
    call()  # the first call traces and compiles; time the steady state
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def tutorial_replay(agent, sample_batch_size):
    """The tutorial's replay, verbatim, on the agent's own network."""
    sample_batch = random.sample(agent.memory, sample_batch_size)
    for state, action, reward, next_state, done in sample_batch:
        target = reward
        if not done:
            target = reward + agent.gamma * np.amax(agent.brain.predict(next_state, verbose=0)[0])
        target_f = agent.brain.predict(state, verbose=0)
        target_f[0][action] = target
        agent.brain.fit(state, target_f, epochs=1, verbose=0)


def main():
    keras.utils.set_random_seed(0)
    agent = Agent(4, 2, os.path.join(tempfile.mkdtemp(), "none.h5"))
    rng = np.random.default_rng(0)
    for _ in range(2000):
        state, next_state = rng.normal(size=(2, 1, 4)).astype(np.float32)
        agent.remember(state, int(rng.integers(2)), 1.0, next_state, bool(rng.random() < 0.1))
    state = rng.normal(size=(1, 4)).astype(np.float32)
    agent.exploration_rate = 0.0  # act() always asks the network

    rows = [
        ("replay(32)", median_ms(lambda: tutorial_replay(agent, 32), 5),
         median_ms(lambda: agent.replay(32), 200)),
        ("act(state)", median_ms(lambda: agent.brain.predict(state, verbose=0), 50),
         median_ms(lambda: agent.act(state), 2000)),
    ]
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, NumPy {np.__version__}, "
          f"{os.cpu_count()} CPUs")
    print(f"{'call':<12}{'tutorial ms':>14}{'ours ms':>12}{'faster':>10}")
    for name, tutorial, ours in rows:
        print(f"{name:<12}{tutorial:>14.2f}{ours:>12.3f}{tutorial / ours:>9.0f}x")
    recipe()
    keeping(agent)


def recipe():
    """The recipe's replay, and a whole run of it: 150 episodes from scratch."""
    folder = tempfile.mkdtemp()
    keras.utils.set_random_seed(0)
    run = CartPole(parse_args(["--recipe", "--seed", "0", "--episodes", "150", "--stop-at", "0",
                               "--weights", os.path.join(folder, "recipe.h5")]))
    with contextlib.redirect_stdout(io.StringIO()):   # its 150 episode lines
        run.run()
    history = run.progress.history
    steps, seconds = history[-1]["steps"], history[-1]["seconds"]
    agent = run.agent
    replay = median_ms(lambda: agent.replay(run.sample_batch_size), 500)
    steps_per_replay = -(-run.sample_batch_size // agent.fit_batch_size)
    print(f"recipe: replay({run.sample_batch_size}) {replay:.3f} ms "
          f"({steps_per_replay} gradient steps); a training run of 150 episodes: "
          f"{steps} steps in {seconds:.1f} s, {steps / seconds:.0f} steps/s")


def keeping(agent):
    """What a checkpoint, a best-network write and a live redraw cost, as shares of the
    intervals at which they happen."""
    folder = tempfile.mkdtemp()
    checkpoint = median_ms(lambda: agent.save_model(), 20)
    best = median_ms(lambda: save(agent.brain, os.path.join(folder, "w.best.h5"),
                                    agent.hidden_layers, 100.0), 20)
    scores = np.random.default_rng(0).integers(8, 500, 1000)   # a noisy run's scores
    history = [dict(episode=i, score=int(scores[i]), exploration=0.995 ** i,
                    avg100=float(np.mean(scores[max(0, i - 99):i + 1])))
               for i in range(len(scores))]
    curve = Curve()
    redraw = median_ms(lambda: curve.png(history), 20)
    print(f"keeping it: a checkpoint {checkpoint:.1f} ms, {checkpoint / 600:.3f}% of its 60 s; "
          f"a best-network write {best:.1f} ms, {best / 50:.3f}% of its 5 s; a live redraw of "
          f"1000 episodes {redraw:.1f} ms, {redraw / 10:.2f}% of its second")


if __name__ == "__main__":
    main()
