"""Where the time goes: one step of the recipe's training, and one fit of the tutorial's replay.

Run by hand, not by CI:  python benchmarks/profile.py [--no-pin]

First it trains the recipe for 150 episodes from seed 0 (benchmarks/speed.py's run) with a
timer around each part of a step: the game's step, act, remember, the replay and, within it,
the sample and the compiled call, and the episode's bookkeeping. What the timers leave is the
loop's own Python (reshapes, the timers themselves). Then it times one fit of the tutorial's
replay against the same compiled call with nothing in it (the same inputs and outputs, no
maths): the call's fixed cost against its maths. Each figure is a share within one process.
--no-pin leaves out keep_to_one_cpu(), which a run from the command line calls, to show what
it buys (a notebook runs so).
"""
import collections
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import cartpole_dqn as dqn  # noqa: E402 (first: TensorFlow loads with the script's settings)

if "--no-pin" not in sys.argv:
    dqn.keep_to_one_cpu()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

spent, calls = collections.Counter(), collections.Counter()


def timed(name, function):
    def timing(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - start
            calls[name] += 1
    return timing


def recipe_step():
    keras.utils.set_random_seed(0)
    run = dqn.CartPole(dqn.parse_args(["--recipe", "--seed", "0", "--episodes", "150",
                                       "--stop-at", "0", "--weights",
                                       os.path.join(tempfile.mkdtemp(), "recipe.h5")]))
    agent = run.agent
    run.env.step = timed("the game's step", run.env.step)
    agent.act = timed("act", agent.act)
    agent.remember = timed("remember (n-step returns, the buffer)", agent.remember)
    agent.replay = timed("replay", agent.replay)
    agent.memory.sample = timed("replay: the sample", agent.memory.sample)
    dqn.FastBrain.run = timed("replay: the compiled call", dqn.FastBrain.run)
    for name in ("episode", "solved"):   # the line, the log, checkpoints, the best network
        method = getattr(dqn.Progress, name)
        setattr(dqn.Progress, name, timed("the episode's bookkeeping", method))
    agent.end_episode = timed("the episode's bookkeeping", agent.end_episode)
    with contextlib.redirect_stdout(io.StringIO()):
        run.run()
    last = run.progress.history[-1]
    total, steps = last["seconds"], last["steps"]
    print(f"One step of the recipe's training: {steps} steps in {total:.2f} s, "
          f"{total / steps * 1e6:.0f} us a step ({steps / total:.0f} steps/s)")
    parts = ["the game's step", "act", "remember (n-step returns, the buffer)", "replay",
             "replay: the sample", "replay: the compiled call", "the episode's bookkeeping"]
    for name in parts:
        print(f"  {name:<40}{spent[name] / steps * 1e6:7.1f} us  {spent[name] / total:6.1%}"
              f"  ({calls[name]} calls)")
    rest = total - sum(spent[name] for name in parts if not name.startswith("replay:"))
    print(f"  {'the loop itself (reshapes, timers)':<40}{rest / steps * 1e6:7.1f} us  "
          f"{rest / total:6.1%}")


def median_us(call, repeats=2000):
    for _ in range(50):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def per_sample_fit():
    keras.utils.set_random_seed(0)
    agent = dqn.Agent(4, 2, os.path.join(tempfile.mkdtemp(), "none.h5"))
    fast = dqn.fast(agent)
    state = np.random.default_rng(0).normal(size=(1, 4)).astype(np.float32)
    target_f = fast.predict(state)
    weights = agent.brain.weights
    spec = [tf.TensorSpec((1, 4), tf.float32), tf.TensorSpec((1, 2), tf.float32)]
    nothing = tf.function(lambda states, targets: [w.value for w in weights])
    nothing = nothing.get_concrete_function(*spec)
    packed = tf.function(lambda inputs: tf.concat([tf.reshape(w.value, [-1]) for w in weights], 0))
    packed = packed.get_concrete_function(tf.TensorSpec((6,), tf.float32))
    inputs = np.concatenate([state.ravel(), target_f.ravel()])
    fit = median_us(lambda: fast.fit(state, target_f))
    floor = median_us(lambda: packed(tf.constant(inputs)).numpy())
    unpacked = median_us(lambda: [w.numpy() for w in nothing(tf.constant(state),
                                                             tf.constant(target_f))])
    predict = median_us(lambda: agent.predict(state))
    count = median_us(lambda: int(agent.brain.optimizer.iterations))
    # The same fit through Keras's own train_step, on a copy of the network.
    other = dqn.Agent(4, 2, os.path.join(tempfile.mkdtemp(), "none.h5"))
    dqn.fast(other).plain_adam = lambda: False
    keras_step = median_us(lambda: dqn.fast(other).fit(state, target_f))
    print(f"One fit of the tutorial's replay: {fit:.0f} us, with TensorFlow's Adam kernel "
          f"({'used' if fast.adam else 'not used'}); {keras_step:.0f} us with Keras's train_step")
    print(f"  the compiled call with no maths in it      {floor:7.1f} us  {floor / fit:6.1%}")
    print(f"  the maths (forward, loss, gradients, Adam) {fit - floor:7.1f} us  "
          f"{(fit - floor) / fit:6.1%}")
    print(f"  (with two tensors in and six out, the empty call takes {unpacked:.1f} us)")
    print(f"A predict {predict:.1f} us; reading the optimizer's step count {count:.1f} us")


if __name__ == "__main__":
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
          f"{'not pinned' if '--no-pin' in sys.argv else 'keep_to_one_cpu()'}")
    recipe_step()
    per_sample_fit()
