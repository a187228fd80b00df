"""Deep Q-Learning on CartPole with Keras and Gymnasium.

A faithful, runnable reproduction of the tutorial "My Journey Into Deep
Q-Learning with Keras and Gym" (Korean translation: "Keras 와 Gym 과 함께하는
Deep Q-Learning 을 향한 여행"). Same names, same order, same hyperparameters,
same algorithm; only the library calls that no longer work, or that cost
~50 ms each, are changed. Every change has a comment that starts with
"Tutorial:" and a row in README.md.

    python cartpole_dqn.py               # train, resuming from cartpole_weight.h5
    python cartpole_dqn.py --render      # watch the cart while it trains
    python cartpole_dqn.py --play 10     # play 10 greedy games with the saved weights
"""
import argparse
import contextlib
import csv
import itertools
import logging
import os
import random
import signal
import stat
import sys
import tempfile
import threading
import time
from collections import deque

if __name__ == "__main__" and hasattr(signal, "pthread_sigmask"):
    # Run as a script: hold Ctrl-C and `kill` back while the libraries below
    # load (a few seconds); main() takes them over, see class Stop.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

import numpy as np
# Tutorial: `import gym`. Gymnasium is the maintained Gym; gym 0.26 crashes on NumPy 2.
import gymnasium as gym

# TensorFlow reads two settings from the environment while it loads:
#  TF_ENABLE_ONEDNN_OPTS=0  its own kernels, not oneDNN's. It turns oneDNN on by
#      itself on some CPUs (AVX-512 ones among them), which then prints a notice
#      at every start and rounds differently, so the same seed takes another path.
#  TF_CPP_MIN_LOG_LEVEL=1   no INFO lines about the CPU's instructions.
# A value the user set wins. Ours are taken out again once TensorFlow has read
# them, so that importing this file leaves the environment as it was.
TENSORFLOW_SETTINGS = {"TF_ENABLE_ONEDNN_OPTS": "0", "TF_CPP_MIN_LOG_LEVEL": "1"}
ours = {name: value for name, value in TENSORFLOW_SETTINGS.items() if name not in os.environ}
os.environ.update(ours)
import keras
import tensorflow as tf
from keras.layers import Dense
from keras.models import Sequential
from keras.optimizers import Adam
for name in ours:
    del os.environ[name]


class WeightFileError(Exception):
    """The weight file cannot be used: it is reported in one line, never overwritten."""


# 0# DQL Agent
class Agent():
    def __init__(self, state_size, action_size, weight_backup="cartpole_weight.h5",
                 fresh=False, **changes):
        # 0# Global Parameters
        self.weight_backup      = weight_backup   # --weights; --fresh ignores an existing file
        self.state_size         = state_size
        self.action_size        = action_size
        self.memory             = deque(maxlen=2000)  # replay memory: the last 2000 steps
        self.learning_rate      = 0.001   # how far each fit moves the weights
        self.gamma              = 0.95    # discount rate of future rewards
        self.exploration_rate   = 1.0     # epsilon: the share of random actions
        self.exploration_min    = 0.01
        self.exploration_decay  = 0.995   # epsilon *= decay after every replay
        self.change(**changes)            # command-line flags change the values above
        self.brain              = self._build_model(fresh)

    def change(self, memory_size=None, **values):
        """Change hyperparameters by name, before the model is built."""
        if memory_size is not None:
            self.memory = deque(maxlen=memory_size)
        for name, value in values.items():
            if not hasattr(self, name):
                raise TypeError(f"{type(self).__name__} has no hyperparameter {name}")
            setattr(self, name, value)

    def _build_model(self, fresh=False):
        # Neural Net for Deep-Q learning Model: state in, one Q-value per action out.
        model = Sequential()
        # Tutorial: Dense(24, input_dim=...). Keras 3 takes the input shape from an Input layer.
        model.add(keras.Input(shape=(self.state_size,)))
        model.add(Dense(24, activation='relu'))
        model.add(Dense(24, activation='relu'))
        model.add(Dense(self.action_size, activation='linear'))
        # Tutorial: Adam(lr=...). Keras 3 only accepts learning_rate=.
        model.compile(loss='mse', optimizer=Adam(learning_rate=self.learning_rate))
        # Create Adam's slots now, so the compiled replay below can update them.
        model.optimizer.build(model.trainable_variables)
        if os.path.isfile(self.weight_backup) and not fresh:
            self._load_weights(model)
            # A trained brain should mostly exploit what it knows.
            self.exploration_rate = self.exploration_min
        self._weights = model.get_weights()
        return model

    def _load_weights(self, model):
        # load_weights reads numbers only; it never rebuilds a model from the
        # file, so a weight file cannot run code.
        try:
            model.load_weights(self.weight_backup)
        except (OSError, ValueError, KeyError) as error:
            reason = str(error).split(".")[0].strip() or type(error).__name__
            raise WeightFileError(
                f"cannot load {self.weight_backup}: {reason}. It was left as it is; "
                f"use --fresh to train from scratch, or --weights PATH for another file"
            ) from None

    def save_model(self):
        # Tutorial: self.brain.save(self.weight_backup), which writes the file in
        # place. save_atomically writes beside it and then renames, so a run
        # killed while saving leaves the old file or the new one, never half of one.
        save_atomically(self.brain, self.weight_backup)

    def act(self, state):
        # 4# Act: explore at random with probability exploration_rate,
        # otherwise take the action with the highest predicted Q-value.
        if np.random.rand() <= self.exploration_rate:
            return random.randrange(self.action_size)
        act_values = self.predict(state)
        return int(np.argmax(act_values[0]))

    def predict(self, state):
        # Tutorial: self.brain.predict(state), which costs ~46 ms a call. The same
        # forward pass (Dense relu, Dense relu, Dense linear) in NumPy on the
        # brain's current weights costs ~0.02 ms; tests check it against predict().
        layers = list(zip(self._weights[0::2], self._weights[1::2]))
        output = state
        for kernel, bias in layers[:-1]:
            output = np.maximum(dense(output, kernel) + bias, 0.0)
        kernel, bias = layers[-1]
        return dense(output, kernel) + bias

    def remember(self, state, action, reward, next_state, done):
        # 2# Remember: store the transition so replay can learn from it later.
        self.memory.append((state, action, reward, next_state, done))

    def replay(self, sample_batch_size):
        # 3# Replay: learn from a random sample of memories rather than from the
        # last steps only; consecutive steps are too alike to learn from alone.
        if len(self.memory) < sample_batch_size:
            return
        sample_batch = random.sample(self.memory, sample_batch_size)
        # Tutorial: a Python loop of predict/predict/fit per sample (~150 ms each).
        # _replay_samples runs the very same loop, one sample after another, as
        # one compiled TensorFlow graph (~5 ms for 32); tests check the weights.
        self._weights = [w.numpy() for w in self._replay_samples(*stack(sample_batch))]
        self.decay_exploration()

    def decay_exploration(self):
        # Explore less as the agent learns. Easy to miss where this happens: the
        # tutorial decays once per replay, so once per episode.
        # Tutorial: `if rate > min: rate *= decay`, which ends just below the
        # minimum (0.00999); max() keeps the floor exact.
        if self.exploration_rate > self.exploration_min:
            self.exploration_rate = max(self.exploration_min,
                                        self.exploration_rate * self.exploration_decay)

    def end_episode(self, index_episode):
        """The tutorial's agent does all its learning in replay(); see TargetAgent."""

    @tf.function
    def _replay_samples(self, states, actions, rewards, next_states, dones):
        for i in tf.range(tf.shape(states)[0]):
            state, next_state = states[i:i + 1], next_states[i:i + 1]
            target = rewards[i]
            if not dones[i]:
                # Worth of the next state: its best Q-value, discounted by gamma.
                target = rewards[i] + self.gamma * tf.reduce_max(self.brain(next_state))
            target_f = self._target_f(state, actions[i:i + 1], target[None])
            self._fit(state, target_f)
        return self.brain.weights   # act() needs them; cheaper here than get_weights()

    def _target_f(self, states, actions, targets):
        # target_f = brain.predict(state); target_f[0][action] = target: the
        # brain's own prediction, with the taken action's value replaced by its
        # target, so that fit learns only that action's error.
        rows = tf.range(tf.shape(actions)[0])
        return tf.tensor_scatter_nd_update(self.brain(states), tf.stack([rows, actions], 1), targets)

    def _fit(self, states, target_f):
        # One gradient step of brain.fit(states, target_f, epochs=1) on one batch.
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.get(self.brain.loss)(
                target_f, self.brain(states, training=True)))
        gradients = tape.gradient(loss, self.brain.trainable_variables)
        self.brain.optimizer.apply(gradients, self.brain.trainable_variables)


# What the second source adds. The tutorial's agent learns to balance within a
# few hundred episodes and then often forgets: every fit moves the very network
# that computes the targets, so the targets chase their own changes.
class TargetAgent(Agent):
    """DQN with a target network, a larger memory and batched training."""

    def __init__(self, state_size, action_size, weight_backup="cartpole_weight.h5",
                 fresh=False, **changes):
        self.sync_every = 10          # episodes (or updates) between target network syncs
        self.sync_by    = "episode"   # --sync-by update: count gradient updates instead
        self.double     = False       # --double: Double DQN targets
        self.loss       = "mse"       # --loss huber
        self.updates    = 0           # replays so far
        # The second source's values where they differ from the tutorial's
        # (its epsilon, epsilon_min and epsilon_decay are the tutorial's
        # exploration_rate, exploration_min and exploration_decay):
        source = dict(gamma=0.99,           # looks further ahead
                      memory_size=50000)    # remembers 25 times as many steps
        super().__init__(state_size, action_size, weight_backup, fresh, **{**source, **changes})
        # A second copy of the brain computes the targets and only changes at a
        # sync, so that targets stay still while the brain learns to meet them.
        self.target_brain = keras.models.clone_model(self.brain)
        self.update_target_network()

    def _build_model(self, fresh=False):
        model = super()._build_model(fresh)
        if self.loss != "mse":
            # Huber loss: errors beyond 1 count linearly, not squared, so a few
            # far-off targets cannot make one update huge.
            model.compile(loss=self.loss, optimizer=Adam(learning_rate=self.learning_rate))
            model.optimizer.build(model.trainable_variables)
        return model

    def update_target_network(self):
        self.target_brain.set_weights(self.brain.get_weights())

    def replay(self, sample_batch_size):
        if len(self.memory) < sample_batch_size:
            return
        # Uniformly without replacement, like the source's np.random.choice(...,
        # replace=False), which costs more as the memory grows (0.6 ms at 50000).
        sample_batch = random.sample(self.memory, sample_batch_size)
        self._weights = [w.numpy() for w in self._replay_batch(*stack(sample_batch))]
        self.updates += 1
        # --sync-by update: a sync every N updates keeps the targets equally
        # old whether episodes are short or long.
        if self.sync_by == "update" and self.updates % self.sync_every == 0:
            self.update_target_network()

    def end_episode(self, index_episode):
        # The source syncs every 10 episodes (on episodes 0, 10, 20, ...), then
        # decays exploration once per episode, however often it trained.
        if self.sync_by == "episode" and index_episode % self.sync_every == 0:
            self.update_target_network()
        self.decay_exploration()

    @tf.function
    def _replay_batch(self, states, actions, rewards, next_states, dones):
        # Targets for the whole batch at once, from the weights before this
        # replay: reward where the pole fell, else reward + gamma * the target
        # network's best Q-value for the next state.
        next_q = self.target_brain(next_states)
        if self.double:
            # Double DQN: the brain picks the next action and the target network
            # values it, so that one network's overestimates are not both
            # chosen and believed.
            best = tf.argmax(self.brain(next_states), axis=1, output_type=tf.int32)
            future = tf.gather(next_q, best, batch_dims=1)
        else:
            future = tf.reduce_max(next_q, axis=1)
        targets = rewards + self.gamma * future * tf.cast(~dones, tf.float32)
        target_qs = self._target_f(states, actions, targets)
        # Source: main_model.fit(states, target_qs, batch_size=32), two gradient
        # steps on two halves. The sample is already in random order, so taking
        # the halves in that order is the same draw as fit's shuffle.
        half = 32
        for start in range(0, states.shape[0], half):
            self._fit(states[start:start + half], target_qs[start:start + half])
        return self.brain.weights


def dense(inputs, kernel):
    """inputs @ kernel, summed in the same order on every CPU.

    NumPy's @ hands the sum to a BLAS library, which picks code for the CPU it
    finds (AVX-512, AVX2, ...), and each adds the products in its own order:
    the last bits differ, and after a thousand episodes so does the path a seed
    takes. Broadcasting and summing over the middle axis adds one input after
    another, in order, whatever the CPU.
    """
    return (inputs[:, :, None] * kernel).sum(axis=1)


def stack(sample_batch):
    """Turn a list of (state, action, reward, next_state, done) into five arrays."""
    states, actions, rewards, next_states, dones = zip(*sample_batch)
    return (np.concatenate(states).astype(np.float32), np.array(actions, np.int32),
            np.array(rewards, np.float32), np.concatenate(next_states).astype(np.float32),
            np.array(dones, bool))


# 1# main() function
class CartPole:
    def __init__(self, args=None):
        args = args or parse_args([])
        self.sample_batch_size = 32
        self.episodes          = args.episodes
        # Tutorial: gym.make('CartPole-v1') and an env.render() to uncomment. In
        # Gymnasium the window is chosen at make(): --render asks for it.
        if args.render:
            open_window()
        self.env               = gym.make('CartPole-v1', render_mode="human" if args.render else None)
        self.state_size        = self.env.observation_space.shape[0]
        # Gymnasium's n is a NumPy integer, which Keras 3's Dense(units) refuses.
        self.action_size       = int(self.env.action_space.n)
        self.agent             = AGENTS[args.agent](self.state_size, self.action_size,
                                                    args.weights, args.fresh,
                                                    **hyperparameters(args))
        # The tutorial replays 32 samples once each episode; the second source
        # replays batches of 64 after every step (--train-every changes it).
        self.train_every       = "episode"
        if args.agent == "target":
            self.sample_batch_size, self.train_every = 64, 1
        self.sample_batch_size = args.batch_size or self.sample_batch_size
        self.train_every       = args.train_every or self.train_every
        self.stop_at           = args.stop_at
        self.seed              = args.seed
        self.log_path          = args.log     # --log: a CSV row per episode
        self.plot_path         = args.plot    # --plot: a PNG learning curve
        self.history           = []           # the rows, for both

    def run(self):
        # From here on Ctrl-C and kill only stop the run between two steps; see class Stop.
        with Stop():
            scores = []
            start, steps = time.perf_counter(), 0
            log = CsvLog(self.log_path) if self.log_path else None
            try:
                for index_episode in range(self.episodes):
                    # Tutorial: state = self.env.reset(). Gymnasium returns (state, info),
                    # and takes the seed here, once, for the first episode only.
                    state, _ = self.env.reset(seed=self.seed if index_episode == 0 else None)
                    state = np.reshape(state, [1, self.state_size])
                    done = False
                    index = 0
                    while not done:
                        action = self.agent.act(state)
                        # Tutorial: next_state, reward, done, _ = env.step(action).
                        # Gymnasium splits done in two, and the difference matters:
                        # terminated: the pole fell or the cart left; no future reward.
                        # truncated: the 500-step time limit; the future goes on, so
                        # replay must still add gamma * max Q(next_state).
                        next_state, reward, terminated, truncated, _ = self.env.step(action)
                        done = terminated or truncated
                        next_state = np.reshape(next_state, [1, self.state_size])
                        self.agent.remember(state, action, reward, next_state, terminated)
                        # Easy to miss: the next step starts from where this one ended.
                        state = next_state
                        index += 1
                        if self.train_every != "episode" and (steps + index) % self.train_every == 0:
                            self.agent.replay(self.sample_batch_size)
                        # Ctrl-C or kill: stop here, between two steps, and save below.
                        Stop.check()
                    # Tutorial: index + 1, one more than the steps the pole stayed up.
                    scores.append(index)
                    steps += index
                    self.report(index_episode, scores, steps, time.perf_counter() - start, log)
                    if self.train_every == "episode":
                        self.agent.replay(self.sample_batch_size)
                    self.agent.end_episode(index_episode)
                    if solved(scores, self.stop_at):
                        print(f"Solved: the last 100 episodes average {np.mean(scores[-100:]):.1f} "
                              f">= {self.stop_at:g}")
                        break
            finally:
                self.agent.save_model()
                print(f"Weights saved to {self.agent.weight_backup}", flush=True)
                if log:
                    log.close()
                if self.plot_path and self.history:
                    plot_learning_curve(self.plot_path, self.history)

    def report(self, index_episode, scores, steps, seconds, log):
        """Print the episode's line, and keep it for --log and --plot."""
        row = dict(episode=index_episode, score=scores[-1], avg100=np.mean(scores[-100:]),
                   exploration=self.agent.exploration_rate, seconds=seconds, steps=steps)
        # Logged before it is printed, so an episode the user saw is in the CSV.
        self.history.append(row)
        if log:
            log.write(row)
        print("Episode {episode}# Score: {score}  avg100: {avg100:.1f}  "
              "exploration: {exploration:.3f}".format(**row), flush=True)


class CsvLog:
    """The --log CSV, written a row at a time, so an interrupted run keeps it."""

    def __init__(self, path):
        self.stream = open(path, "w", newline="", buffering=1)   # flushed every line
        self.writer = csv.DictWriter(self.stream, LOG_COLUMNS)
        self.writer.writeheader()

    def write(self, row):
        self.writer.writerow({**row, "avg100": f"{row['avg100']:.2f}",
                              "exploration": f"{row['exploration']:.5f}",
                              "seconds": f"{row['seconds']:.3f}"})

    def close(self):
        self.stream.close()


LOG_COLUMNS = ["episode", "score", "avg100", "exploration", "seconds", "steps"]


def plot_learning_curve(path, history):
    """Score, last-100 average and the solved bar; exploration on a second axis."""
    import matplotlib
    matplotlib.use("Agg")  # draw into a file; no display needed
    import matplotlib.pyplot as plt
    episodes = [row["episode"] for row in history]
    figure, scores_axis = plt.subplots(figsize=(8, 4.5))
    scores_axis.plot(episodes, [row["score"] for row in history], color="tab:blue",
                     alpha=0.35, linewidth=0.8, label="score")
    scores_axis.plot(episodes, [row["avg100"] for row in history], color="tab:blue",
                     linewidth=2, label="last-100 average")
    # CartPole-v1's solved bar, whatever --stop-at is.
    scores_axis.axhline(475, color="tab:red", linestyle="--", label="solved (475)")
    scores_axis.set(xlabel="episode", ylabel="score (steps)", ylim=(0, 510))
    rate_axis = scores_axis.twinx()
    rate_axis.plot(episodes, [row["exploration"] for row in history], color="tab:green",
                   linewidth=1, label="exploration rate")
    rate_axis.set(ylabel="exploration rate", ylim=(0, 1.02))
    lines = scores_axis.get_legend_handles_labels()
    rates = rate_axis.get_legend_handles_labels()
    scores_axis.legend(lines[0] + rates[0], lines[1] + rates[1], loc="upper center",
                       bbox_to_anchor=(0.5, -0.15), ncol=4, frameon=False)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def solved(scores, stop_at):
    # CartPole-v1 counts as solved when 100 consecutive episodes average at least
    # 475 (env.spec.reward_threshold); --stop-at changes the bar, 0 turns it off.
    return stop_at > 0 and len(scores) >= 100 and np.mean(scores[-100:]) >= stop_at


def open_window():
    """Check for a display before --render draws: without one, SDL quietly falls
    back to an invisible 'offscreen' window, on which CartPole's renderer crashes."""
    wanted = os.environ.get("SDL_VIDEODRIVER")
    if sys.platform.startswith("linux") and not (
            wanted or os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise UsageError("--render needs a display, and DISPLAY is not set "
                         "(SDL_VIDEODRIVER=dummy renders to no screen)")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        import pygame
    except ImportError:
        raise UsageError("--render needs pygame: pip install 'gymnasium[classic-control]'") from None
    pygame.display.init()
    if pygame.display.get_driver() == "offscreen" and wanted != "offscreen":
        raise UsageError(f"--render found no display at DISPLAY={os.environ.get('DISPLAY')}")


class UsageError(Exception):
    """A problem with the command line or the machine, reported in one line."""


def check_paths(args):
    """Refuse, before anything is trained or played, a path that would fail later.

    Each problem is one line and exit status 2, while the work is still ahead
    and the old weight file untouched.
    """
    check_file("--weights", args.weights, write=not args.play)
    check_weight_name(args.weights)
    if args.log:
        check_file("--log", args.log)
    if args.plot:
        require("matplotlib", "--plot")
        check_file("--plot", args.plot)
        check_picture_name(args.plot)
    if args.video:
        require("moviepy", "--video")
        check_video_folder(args.video)
    named = [(flag, os.path.realpath(path)) for flag, path in
             (("--weights", args.weights), ("--log", args.log), ("--plot", args.plot)) if path]
    for i, (flag, path) in enumerate(named):
        for other, other_path in named[i + 1:]:
            if path == other_path:
                raise UsageError(f"{flag} and {other} name the same file, {path}: "
                                 "one would overwrite the other")


def check_weight_name(path):
    """Keras picks a file's format by the end of its name: allow only names it
    reads back as the HDF5 file that save_model writes."""
    name = os.path.basename(path)
    if not name:
        raise UsageError(f"--weights {path!r} names no file")
    if name.endswith(".weights.h5"):
        raise UsageError(f"--weights {path}: Keras reads a name ending in .weights.h5 as "
                         "its newer weights-only format, not as the HDF5 file written "
                         f"here; use a name like {path[:-len('.weights.h5')]}.h5")
    if not name.endswith((".h5", ".hdf5")):
        stem = os.path.splitext(path)[0] if name.lower().endswith((".keras", ".h5")) else path
        raise UsageError(f"--weights {path}: the weight file is HDF5, and Keras reads a "
                         f"name back as HDF5 only if it ends in .h5; use {stem}.h5")


def check_file(flag, path, write=True):
    """A file where a file is meant, in a folder that exists (and can be written)."""
    if os.path.isdir(path):
        raise UsageError(f"{flag} {path} is a folder; name a file in it, such as "
                         f"{os.path.join(path, DEFAULT_NAMES[flag])}")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"{flag} {path} exists and is not a regular file")
    if write:
        check_writable(flag, os.path.dirname(os.path.abspath(path)), path)


DEFAULT_NAMES = {"--weights": "cartpole_weight.h5", "--log": "log.csv", "--plot": "curve.png"}


def check_writable(flag, folder, path):
    """Fail now, not after hours of training, if nothing can be written in folder."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot write in {folder}: {error.strerror}") from None


def check_picture_name(path):
    """matplotlib picks the picture's format from the name's extension, and adds
    .png to a name without one: ask for one it can write."""
    from matplotlib.figure import Figure
    formats = Figure().canvas.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in formats:
        found = f"matplotlib cannot write .{extension} pictures" if extension else "no extension"
        raise UsageError(f"--plot {path}: {found}; end the name in .png, .svg or .pdf")


def check_video_folder(folder):
    """--video names a folder, which RecordVideo creates; each game is one MP4 in it."""
    if os.path.splitext(folder)[1].lower() in (".mp4", ".gif", ".avi", ".mov", ".webm", ".mkv"):
        raise UsageError(f"--video {folder}: --video takes a folder, and each game becomes "
                         "an MP4 in it; name a folder, such as videos")
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UsageError(f"--video {folder}: {existing} is a file, not a folder")
    check_writable("--video", existing, folder)


def save_atomically(model, path):
    """model.save(path), but all or nothing, and keeping the file's mode.

    The weights go to a new file beside `path`, which then replaces `path` in
    one rename: a run killed at any moment leaves the old file or the new one.
    A symbolic link is followed, so the file it points to is the one updated.
    """
    path = os.path.realpath(path)
    folder, name = os.path.split(path)
    # Created as any new file is (the user's umask), unlike mkstemp's 0600; Keras
    # needs the .h5 ending to write HDF5.
    for attempt in itertools.count():
        temporary = os.path.join(folder, f".{name}.{os.getpid()}-{attempt}.h5")
        try:
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            break
        except FileExistsError:
            continue
    try:
        model.save(temporary)
        if os.path.exists(path):
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())   # on disk before the rename makes it the file
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def play(env, agent, episodes, seed=None):
    """Play greedy episodes with the saved weights (no exploration, no training)."""
    agent.exploration_rate = 0.0
    scores = []
    with Stop():
        for index_episode in range(episodes):
            state, _ = env.reset(seed=seed if index_episode == 0 else None)
            done = False
            index = 0
            while not done:
                action = agent.act(np.reshape(state, [1, -1]))
                state, _, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
                index += 1
                Stop.check()
            scores.append(index)
            print(f"Play {index_episode}# Score: {index}", flush=True)
    print(f"Mean score over {episodes} games: {np.mean(scores):.1f}")
    return scores


def bounded(kind, low, high=None):
    """An argparse type: a number of `kind` in [low, high], or a usage error."""
    def parse(text):
        value = kind(text)
        if value < low or (high is not None and value > high):
            limit = f"at least {low}" if high is None else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"{text} is not {limit}")
        return value
    parse.__name__ = kind.__name__
    return parse


def replay_interval(text):
    """--train-every: 'episode', or a number of steps ('step' is 1)."""
    if text in ("step", "episode"):
        return 1 if text == "step" else text
    try:
        return bounded(int, 1)(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text} is not step, episode or a number") from None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Deep Q-Learning on CartPole-v1 (Keras + Gymnasium). "
                    "With no flags it trains as the tutorial does.")
    parser.add_argument("--episodes", type=bounded(int, 1), default=10000,
                        help="episodes to train (default: 10000)")
    parser.add_argument("--seed", type=bounded(int, 0),
                        help="seed Python, NumPy, TensorFlow and the environment")
    parser.add_argument("--weights", default="cartpole_weight.h5",
                        help="weight file to resume from and save to (default: %(default)s)")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore an existing weight file and start from scratch")
    parser.add_argument("--render", action="store_true", help="show the cart in a window")
    parser.add_argument("--play", type=bounded(int, 1), metavar="N",
                        help="play N greedy games with the saved weights, no training")
    parser.add_argument("--stop-at", type=bounded(float, 0, 500), default=475.0, metavar="AVG",
                        help="stop once the last 100 episodes average at least AVG "
                             "(default: 475, CartPole-v1's solved bar; 0: never)")
    parser.add_argument("--agent", choices=AGENTS, default="tutorial",
                        help="tutorial: the tutorial's DQN (default); target: the second "
                             "source's DQN with a target network")
    parser.add_argument("--video", metavar="DIR",
                        help="with --play: record each game as an MP4 in DIR")
    parser.add_argument("--log", metavar="CSV", help="write one CSV row per episode")
    parser.add_argument("--plot", metavar="PNG", help="write a learning curve at the end")
    knobs = parser.add_argument_group(
        "hyperparameters", "Each defaults to the value in the chosen agent's source.")
    knobs.add_argument("--gamma", type=bounded(float, 0, 1), help="discount rate")
    knobs.add_argument("--learning-rate", type=bounded(float, 1e-9, 1), help="Adam's step size")
    knobs.add_argument("--batch-size", type=bounded(int, 1), help="samples per replay")
    knobs.add_argument("--memory-size", type=bounded(int, 1), help="transitions remembered")
    knobs.add_argument("--exploration-decay", type=bounded(float, 0, 1),
                       help="factor on the exploration rate per decay")
    knobs.add_argument("--exploration-min", type=bounded(float, 0, 1),
                       help="floor of the exploration rate")
    knobs.add_argument("--train-every", type=replay_interval, metavar="{step,episode,N}",
                       help="replay after every step, every N steps, or after every "
                            "episode (default: episode for tutorial, step for target)")
    target_only = parser.add_argument_group("target agent only")
    target_only.add_argument("--sync-every", type=bounded(int, 1), metavar="N",
                             help="sync the target network every N episodes (default 10)")
    target_only.add_argument("--sync-by", choices=["episode", "update"],
                             help="count --sync-every in episodes (default) or in updates")
    target_only.add_argument("--double", action="store_true", default=None,
                             help="Double DQN targets")
    target_only.add_argument("--loss", choices=["mse", "huber"], help="default: mse")
    args = parser.parse_args(argv)
    for name in TARGET_ONLY:
        if getattr(args, name) is not None and args.agent != "target":
            parser.error(f"--{name.replace('_', '-')} needs --agent target")
    if args.video and not args.play:
        parser.error("--video records --play games: add --play N")
    if args.video and args.render:
        parser.error("--video and --render draw in different ways: choose one")
    return args


TARGET_ONLY = ["sync_every", "sync_by", "double", "loss"]


def hyperparameters(args):
    """The agent attributes that flags set; None means the source's default."""
    names = ["gamma", "learning_rate", "memory_size", "exploration_decay",
             "exploration_min", *TARGET_ONLY]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def main(argv=None):
    # The whole program, from here to its exit: Ctrl-C and kill only leave a
    # note, which the loops act on (see class Stop).
    Stop.take_over()
    try:
        args = parse_args(argv)
        check_paths(args)
        # Keras warns that a full model in .h5 is a legacy format; the tutorial's
        # file name is kept on purpose, and only its weights are ever read back.
        logging.getLogger("absl").setLevel(logging.ERROR)
        if args.seed is not None:
            # One place seeds Python, NumPy and TensorFlow (random actions come from
            # Python's random); the environment gets the seed in its first reset().
            keras.utils.set_random_seed(args.seed)
        if args.play:
            return play_saved(args)
        CartPole(args).run()
    except (UsageError, WeightFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    return 0


def play_saved(args):
    if not os.path.isfile(args.weights):
        raise UsageError(f"no weight file at {args.weights}: train first, "
                         "or point --weights at one")
    if args.render:
        open_window()
    render_mode = "human" if args.render else "rgb_array" if args.video else None
    env = gym.make('CartPole-v1', render_mode=render_mode)
    if args.video:
        env = record_video(env, args.video)
    agent = AGENTS[args.agent](env.observation_space.shape[0], int(env.action_space.n),
                               args.weights)
    try:
        play(env, agent, args.play, args.seed)
    finally:
        env.close()   # RecordVideo writes the last video here
    return 0


def record_video(env, folder):
    """Record every episode as an MP4 in folder, drawn off-screen (no display needed)."""
    # Frames are drawn into memory, so pygame needs no display; without this
    # it probes for one, and SDL prints complaints about each it cannot find.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return gym.wrappers.RecordVideo(env, folder, episode_trigger=lambda episode: True,
                                    name_prefix="cartpole")


def require(module, flag):
    try:
        __import__(module)
    except ImportError:
        raise UsageError(f"{flag} needs {module}: pip install {module}") from None


class Terminated(BaseException):
    """`kill` (SIGTERM) stopped the run: raised by Stop.check(), exit status 143.

    A BaseException, like KeyboardInterrupt, so that no `except Exception`
    on the way up can swallow it.
    """


class Stop:
    """Ctrl-C (SIGINT) and `kill` (SIGTERM), acted on where the program is ready.

    A signal handler runs wherever Python happens to be when the signal lands:
    inside TensorFlow, inside h5py during the save, inside a replay. A handler
    that raised an exception would raise it there, and TensorFlow catches
    exceptions and raises others in their place (a `TypeError` instead of the
    stop). So the handler only notes the signal, and Stop.check(), called by
    the training and play loops between two steps, raises KeyboardInterrupt or
    Terminated from our own code. The tutorial's `finally` then saves the
    weights. A signal that lands after the last check (in the last replay, or
    during the save) is raised as soon as the `with Stop():` block ends.

    `with Stop():` takes the signals over for the block and gives them back
    after it, so that in a notebook the kernel's stop button keeps the training
    as Ctrl-C does, and interrupts other cells as usual afterwards.
    """
    SIGNALS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}
    noted = None     # the first signal that landed and has not been raised yet

    @staticmethod
    def note(signum, frame):
        Stop.noted = Stop.noted or signum

    @classmethod
    def check(cls):
        """Raise the signal noted since the last check, if any."""
        signum, cls.noted = cls.noted, None
        if signum:
            raise cls.SIGNALS[signum]()

    @classmethod
    def take_over(cls):
        """Handle Ctrl-C and kill by noting them, until the program ends.

        Also when a shell started us in the background with Ctrl-C ignored.
        Returns the handlers that were there, or None where signals cannot be
        handled (Python handles them in its main thread only).
        """
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {signum: signal.signal(signum, cls.note) for signum in cls.SIGNALS}
        if hasattr(signal, "pthread_sigmask"):
            # Run as a script, the signals were held back while the libraries
            # loaded (see the imports); one that came meanwhile is noted now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, set(cls.SIGNALS))
        return previous

    def __enter__(self):
        if Stop.noted:
            # It landed before the block, while the model was built, say: stop
            # now, before anything is trained or written.
            print("Stopped before it started: nothing was trained or written", flush=True)
            Stop.check()
        # The program's own handler may be in place already (main() took over).
        self.previous = None if Stop.handling() else Stop.take_over()
        return self

    def __exit__(self, kind, error, traceback):
        if self.previous:
            for signum, handler in self.previous.items():
                signal.signal(signum, handler)
        if kind is None:
            Stop.check()
        elif not Stop.handling():
            Stop.noted = None   # stopping already; not to be carried into the next block
        return False

    @classmethod
    def handling(cls):
        return signal.getsignal(signal.SIGINT) is cls.note


AGENTS = {"tutorial": Agent, "target": TargetAgent}


if __name__ == "__main__":
    sys.exit(main())
