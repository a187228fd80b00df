"""Deep Q-Learning on CartPole with Keras and Gymnasium.

A faithful, runnable reproduction of the tutorial "My Journey Into Deep
Q-Learning with Keras and Gym" (in its Korean translation, "Keras 와 Gym 과
함께하는 Deep Q-Learning 을 향한 여행", Keras Korea, 2018).

The file has two parts. The first is the tutorial: its Agent and CartPole, with
its names, order, hyperparameters and algorithm. Where today's libraries, or
Keras's tens of milliseconds per call, forced a change, a comment starting
"Tutorial:" says what the tutorial wrote and why this differs, and README.md
lists it. The second part, below the line "Beyond the tutorial", holds
everything else: the second source's target-network agent, the fast stand-ins
for Keras's calls, reporting, play and video, the command line and the safety
checks.

    python cartpole_dqn.py               # train, resuming from cartpole_weight.h5
    python cartpole_dqn.py --render      # watch the cart while it trains
    python cartpole_dqn.py --play 10     # play 10 greedy games with the saved weights
"""
import argparse
import csv
import io
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
    # load (a few seconds); main() takes them over (see class Stop).
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


# 0# DQL Agent
class Agent():
    # Tutorial: `def __init__(self, state_size, action_size):`, with the weight
    # file fixed. --weights names another, --fresh starts afresh whatever is
    # there, and the hyperparameter flags change the values below (parse_args).
    def __init__(self, state_size, action_size, weight_backup="cartpole_weight.h5",
                 fresh=False, **hyperparameters):
        # 0# Global Parameters
        self.weight_backup      = weight_backup
        self.state_size         = state_size
        self.action_size        = action_size
        self.memory             = deque(maxlen=2000)  # replay memory: the last 2000 steps
        self.learning_rate      = 0.001   # how far each fit moves the weights
        self.gamma              = 0.95    # discount rate: how much future rewards count
        self.exploration_rate   = 1.0     # epsilon: the share of random actions
        self.exploration_min    = 0.01
        self.exploration_decay  = 0.995   # exploration_rate *= this, after every replay
        self.hidden_layers      = (24, 24)  # the hidden layers' sizes (--hidden)
        self.fresh              = fresh
        set_hyperparameters(self, hyperparameters)
        self.brain              = self._build_model()

    def _build_model(self):
        # Neural Net for Deep-Q learning Model: a state in, one Q-value per action out.
        model = Sequential()
        # Tutorial: `model.add(Dense(24, input_dim=self.state_size, activation='relu'))`.
        # Keras 3 has no input_dim: the input's shape comes from an Input first.
        model.add(keras.Input(shape=(self.state_size,)))
        # Tutorial: `model.add(Dense(24, activation='relu'))`, twice. The sizes are
        # hidden_layers: (24, 24), those of --hidden, or those of the weight file.
        for units in self.hidden_layers:
            model.add(Dense(units, activation='relu'))
        model.add(Dense(self.action_size, activation='linear'))
        # Tutorial: `Adam(lr=self.learning_rate)`. Keras 3 only takes learning_rate=.
        model.compile(loss='mse', optimizer=Adam(learning_rate=self.learning_rate))
        # Tutorial: `if os.path.isfile(self.weight_backup):`. --fresh ignores the file.
        if os.path.isfile(self.weight_backup) and not self.fresh:
            # Tutorial: `model.load_weights(self.weight_backup)`. The same call; a file
            # it cannot load stops the program in one line, and is left as it is.
            load_weights(model, self.weight_backup)
            # A trained brain mostly acts on what it knows.
            self.exploration_rate = self.exploration_min
        return model

    def save_model(self):
        # Tutorial: `self.brain.save(self.weight_backup)`, which writes the file in
        # place. save_atomically writes it beside and then renames it over the old
        # one: a run killed while saving leaves the old file or the new one.
        save_atomically(self.brain, self.weight_backup)

    def act(self, state):
        # 4# Act: explore at random with probability exploration_rate; otherwise
        # take the action whose predicted Q-value (future reward) is highest.
        if np.random.rand() <= self.exploration_rate:
            return random.randrange(self.action_size)
        # Tutorial: `act_values = self.brain.predict(state)`. See predict() below.
        act_values = self.predict(state)
        return np.argmax(act_values[0])

    def remember(self, state, action, reward, next_state, done):
        # 2# Remember: keep every step, so that replay() can learn from it later.
        self.memory.append((state, action, reward, next_state, done))

    def replay(self, sample_batch_size):
        # 3# Replay: learn from a random sample of memories rather than from the
        # last steps alone: consecutive steps are too alike to learn from.
        if len(self.memory) < sample_batch_size:
            return
        sample_batch = random.sample(self.memory, sample_batch_size)
        for state, action, reward, next_state, done in sample_batch:
            # The target: the reward, plus, unless the pole fell, the discounted
            # value of the best action from the next state (the Q-learning rule).
            target = reward
            if not done:
                # Tutorial: `np.amax(self.brain.predict(next_state)[0])`. See predict().
                target = reward + self.gamma * np.amax(self.predict(next_state)[0])
            # Tutorial: `target_f = self.brain.predict(state)`.
            target_f = self.predict(state)
            # Only the action taken gets a new target; the other keeps the brain's
            # own prediction, so that fit learns from this action's error alone.
            target_f[0][action] = target
            # Tutorial: `self.brain.fit(state, target_f, epochs=1, verbose=0)`. See fit().
            self.fit(state, target_f)
        # Explore less as the agent learns. Easy to miss: this happens once per
        # replay, so once per episode, not once per step.
        if self.exploration_rate > self.exploration_min:
            self.exploration_rate *= self.exploration_decay

    # -- Agent, beyond the tutorial: the two stand-ins for Keras's calls --------
    # brain.predict and brain.fit set up a whole Keras loop on every call, tens of
    # milliseconds each for one state, and replay(32) made 96 of them (README,
    # "Speed"). predict() and fit() do the same maths on the same network without
    # that set-up; the tests check both against Keras's own calls. How they work
    # is below the line.

    def predict(self, state):
        """self.brain.predict(state): the brain's own layers, run in NumPy on its
        current weights (hundredths of a millisecond)."""
        if self._brain_weights is None:
            self._brain_weights = self._brain.get_weights()
        return self._forward(self._brain_weights, state)

    def fit(self, state, target_f):
        """self.brain.fit(state, target_f, epochs=1, verbose=0): one gradient step,
        Keras's own train_step, compiled once (under a millisecond)."""
        self._brain_weights = self._train_step(state, target_f)

    @property
    def brain(self):
        # Whoever takes the Keras model may change its weights (fit, load_weights,
        # set_weights); predict() then reads them afresh before its next pass.
        self._brain_weights = None
        return self._brain

    @brain.setter
    def brain(self, model):
        # A layer predict() cannot run stops the program here, in one line.
        self._forward = NumpyForward(model, self.state_size)
        self._train_step = TrainStep(model)
        self._brain, self._brain_weights = model, None

    def end_episode(self, index_episode):
        """The tutorial's agent does all its learning in replay(); TargetAgent
        syncs its target network and decays exploration here."""


# 1# main() function
class CartPole:
    # Tutorial: `def __init__(self):`, every value written in. The flags carry
    # them, each with the tutorial's value as its default (see parse_args).
    def __init__(self, args=None):
        args = args or parse_args([])
        # Tutorial: `self.sample_batch_size = 32` and `self.episodes = 10000`: the
        # defaults of --batch-size and --episodes (the second source's: 64 and 500).
        self.sample_batch_size = args.batch_size
        self.episodes          = args.episodes
        # Tutorial: `gym.make('CartPole-v1')`. Gymnasium opens the window here, at
        # make(), and draws every step: --render asks for it.
        self.env               = gym.make('CartPole-v1', render_mode=render_mode(args))
        self.state_size        = self.env.observation_space.shape[0]
        # Tutorial: `self.env.action_space.n`. Keras 3's Dense refuses the NumPy
        # integer that Gymnasium gives.
        self.action_size       = int(self.env.action_space.n)
        # Tutorial: `Agent(self.state_size, self.action_size)`. --agent target takes
        # the second source's agent; --weights, --fresh and the hyperparameters go to it.
        self.agent             = AGENTS[args.agent](self.state_size, self.action_size,
                                                    args.weights, args.fresh,
                                                    **hyperparameters(args))
        self.options           = args   # what only the code below the line reads

    def run(self):
        # Beyond the tutorial: with Stop, Ctrl-C and kill stop the run between two
        # steps (see class Stop); Progress prints each episode's line and keeps it
        # for --log, --plot and the solved bar (see class Progress).
        with Stop(), Progress(self.options) as self.progress:
            try:
                for index_episode in range(self.episodes):
                    # Tutorial: `state = self.env.reset()`. Gymnasium returns (state, info)
                    # and takes the seed; --seed gives it once, to the first episode.
                    state, _ = self.env.reset(seed=self.options.seed if index_episode == 0 else None)
                    state = np.reshape(state, [1, self.state_size])
                    done = False
                    index = 0
                    while not done:
#                       self.env.render()
                        # Tutorial: `self.env.render()`, to uncomment to watch. Gymnasium
                        # draws every step by itself once make() has render_mode="human":
                        # --render does that.
                        action = self.agent.act(state)
                        # Tutorial: `next_state, reward, done, _ = self.env.step(action)`.
                        # Gymnasium says why an episode ended, and the difference matters:
                        # terminated: the pole fell or the cart left; no reward follows.
                        # truncated: the 500-step time limit; the future goes on.
                        next_state, reward, terminated, truncated, _ = self.env.step(action)
                        done = terminated or truncated
                        next_state = np.reshape(next_state, [1, self.state_size])
                        # Tutorial: `self.agent.remember(state, action, reward, next_state, done)`.
                        # Ignore done when it comes from the time limit: store terminated,
                        # so that replay still adds gamma * max Q(next_state) there.
                        self.agent.remember(state, action, reward, next_state, terminated)
                        # Easy to miss: the next step starts from where this one ended.
                        state = next_state
                        index += 1
                        # Beyond the tutorial: the second source replays after every step
                        # (--train-every). Ctrl-C and kill stop the run here.
                        if self.options.train_every != "episode" and (
                                self.progress.steps + index) % self.options.train_every == 0:
                            self.agent.replay(self.sample_batch_size)
                        Stop.check()
                    # Tutorial: `print("Episode {}# Score: {}".format(index_episode, index + 1))`.
                    # index already counts the steps the pole stayed up; the line adds
                    # the last-100 average and the exploration rate.
                    self.progress.episode(index_episode, index, self.agent)
                    if self.options.train_every == "episode":
                        self.agent.replay(self.sample_batch_size)
                    self.agent.end_episode(index_episode)
                    # Beyond the tutorial: stop once solved (--stop-at; see Progress.solved).
                    if self.progress.solved():
                        break
            finally:
                self.agent.save_model()
                print(f"Weights saved to {self.agent.weight_backup}", flush=True)


# The tutorial's entry point, `cartpole = CartPole(); cartpole.run()` under
# `if __name__ == "__main__":`. Here main() reads the command line first and
# turns a stop or a bad input into an exit status. The `if` itself is the
# file's last line: Python runs it where it stands, and main() needs what the
# rest of the file defines.
def main(argv=None):
    # For the whole program: Ctrl-C and kill only leave a note (see class Stop).
    Stop.take_over()
    try:
        args = parse_args(argv)
        check_paths(args)
        if args.seed is not None:
            # One place seeds Python, NumPy and TensorFlow (random actions come
            # from Python's random); the environment gets the seed in reset().
            keras.utils.set_random_seed(args.seed)
        if args.play:
            return play_saved(args)
        cartpole = CartPole(args)
        cartpole.run()
    except (UsageError, WeightFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Terminated:
        return 143
    return 0


# ==============================================================================
# Beyond the tutorial
# ==============================================================================


# -- The second source: a target network ----------------------------------------
# The tutorial's agent computes its targets with the very network it trains, so
# every fit moves the targets it is chasing: it learns to balance, then often
# forgets. The second source (a Korean DQN notebook that records CartPole
# videos) adds the standard remedy. Each change from it is listed in README.md
# and marked "Source:" here.

class ReplayBuffer:
    """The second source's ReplayBuffer: the last max_size steps, sampled
    uniformly without replacement."""
    # Source: `self.buffer = deque(maxlen=max_size)`, a deque of tuples. Here one
    # NumPy table, a row per step, so that a sample is one slice and one array
    # for TensorFlow to take in (each array costs ~20 us to hand over); the
    # names below are views of its columns.

    def __init__(self, max_size, state_size):
        self.max_size, self.state_size = max_size, state_size
        self.table = np.zeros((max_size, 2 * state_size + 4), np.float32)
        self.states = self.table[:, :state_size]
        self.next_states = self.table[:, state_size:2 * state_size]
        # steps: how many rewards `rewards` sums (--n-step; 1 in the source).
        self.actions, self.rewards, self.dones, self.steps = self.table[:, 2 * state_size:].T
        self.added = 0

    def add(self, experience, steps=1):
        # When full, the oldest step makes room, as in a deque(maxlen=max_size).
        i = self.added % self.max_size
        state, action, reward, next_state, done = experience
        self.states[i], self.actions[i], self.rewards[i] = state[0], action, reward
        self.next_states[i], self.dones[i], self.steps[i] = next_state[0], done, steps
        self.added += 1

    def sample(self, batch_size):
        # Source: `np.random.choice(len(self.buffer), batch_size, replace=False)`,
        # which makes a permutation of the whole buffer. random.sample draws
        # from the same distribution in time that does not grow with the buffer.
        rows = random.sample(range(self.size()), batch_size)
        return self.table[rows]

    @staticmethod
    def columns(sample, state_size):
        """A sample's states, actions, rewards, next_states, dones and steps, from
        its rows (a NumPy array or a tensor); actions and dones as numbers."""
        s = state_size
        return (sample[:, :s], sample[:, 2 * s], sample[:, 2 * s + 1], sample[:, s:2 * s],
                sample[:, 2 * s + 2], sample[:, 2 * s + 3])

    def size(self):
        return min(self.added, self.max_size)

    def __len__(self):
        return self.size()


class TargetAgent(Agent):
    """The second source's DQNAgent, written as its difference from the tutorial's."""
    # Source: `return env.action_space.sample()` for a random action. act() here
    # is the tutorial's, random.randrange: the same uniform choice, drawn from
    # the one generator that --seed seeds.

    def __init__(self, state_size, action_size, weight_backup="cartpole_weight.h5",
                 fresh=False, **hyperparameters):
        self.sync_every = 10          # target network syncs: every 10 episodes
        self.sync_by    = "episode"   # --sync-by replay: count replays instead
        self.tau        = 1.0         # a sync copies this share of the brain (--tau)
        self.double     = False       # --double: Double DQN targets
        self.loss       = "mse"       # --loss huber
        self.clip_norm  = None        # --clip-norm: the gradients' largest global norm
        self.exploration_steps = None  # --exploration-steps: a linear decay over N steps
        self.n_step     = 1           # --n-step: rewards summed before the bootstrap
        self.replays    = 0           # replays so far; each takes a step per 32 samples
        self.steps      = 0           # environment steps remembered so far
        # The second source's gamma and memory size. Its epsilon, epsilon_min and
        # epsilon_decay are the tutorial's exploration_* values.
        source = dict(gamma=0.99, memory_size=50000)
        super().__init__(state_size, action_size, weight_backup, fresh,
                         **{**source, **hyperparameters})
        self.memory = ReplayBuffer(self.memory.maxlen, state_size)
        self.recent = []   # this episode's last steps, not yet in memory (--n-step)
        # The second source's target_model: a second copy of the network. It
        # computes the targets and only changes at a sync, so that they stand
        # still while the brain learns to meet them.
        self.target_brain = keras.models.clone_model(self.brain)
        self.target_brain.set_weights(self.brain.get_weights())
        self._replay_step = ReplayStep(self)
        self.exploration_start = self.exploration_rate

    def _build_model(self):
        model = super()._build_model()
        if self.clip_norm:
            # Clipping: a step whose gradients are long is shortened to this
            # length, so that a few surprising targets cannot throw the net far.
            model.compile(loss=self.loss, optimizer=Adam(learning_rate=self.learning_rate,
                                                         global_clipnorm=self.clip_norm))
        elif self.loss != "mse":
            recompile(model, self.loss)
        return model

    def update_target_network(self):
        # tau 1 (the source): a copy. Below 1, a soft update: the target network
        # moves that share of the way towards the brain, so that it trails it
        # smoothly instead of jumping at every sync.
        self.target_brain.set_weights(
            [self.tau * new + (1 - self.tau) * old for new, old in
             zip(self.brain.get_weights(), self.target_brain.get_weights())])

    def remember(self, state, action, reward, next_state, done):
        # Source: `done = done or truncated`, stored with the step. Here the time
        # limit is not an end of the future: done is terminated (see run()).
        self.recent.append((state, action, reward, next_state, done))
        if done or len(self.recent) == self.n_step:
            self.store_recent(everything=done)
        self.steps += 1
        if self.exploration_steps:
            # --exploration-steps N: from where it started down to exploration_min
            # in a straight line over N steps, however long the episodes are.
            done_share = min(1.0, self.steps / self.exploration_steps)
            self.exploration_rate = self.exploration_start + done_share * (
                self.exploration_min - self.exploration_start)

    def replay(self, sample_batch_size):
        # The second source's train(): a sample of 64; targets for all of it at
        # once, from the target network; then fit(batch_size=32): two steps.
        if self.memory.size() < sample_batch_size:
            return
        if self._brain.loss != self.loss:
            recompile(self._brain, self.loss)   # --loss, or agent.loss changed since
        self.replays += 1
        # --sync-by replay: a sync every N replays keeps the targets equally old,
        # whether the episodes are short or long. It happens in the same graph,
        # after the gradient steps: a soft update after every replay costs no
        # second call into TensorFlow.
        sync = self.sync_by == "replay" and self.replays % self.sync_every == 0
        self._brain_weights = self._replay_step(self.memory.sample(sample_batch_size), sync)

    def store_recent(self, everything):
        """Store the oldest recent step (or all of them, at an episode's end) with
        the rewards of the steps that follow it summed in: an n-step return.

        With --n-step 1, the source's: each step as it comes. With n, a step's
        target is r + gamma r' + ... + gamma^(n-1) r'' + gamma^n max Q(the state
        n steps on): a fall reaches the value of a state n steps earlier in one
        replay instead of n.
        """
        while self.recent:
            rewards = sum(self.gamma ** k * step[2] for k, step in enumerate(self.recent))
            state, action = self.recent[0][:2]
            next_state, done = self.recent[-1][3:]
            self.memory.add((state, action, rewards, next_state, done), steps=len(self.recent))
            self.recent.pop(0)
            if not everything:
                return

    def end_episode(self, index_episode):
        if self.recent:
            self.store_recent(everything=True)   # the time limit ended it: bootstrap from there
        # As in the second source: a sync on episodes 0, 10, 20, ..., then
        # exploration decays once per episode, however often it trained.
        if self.sync_by == "episode" and index_episode % self.sync_every == 0:
            self.update_target_network()
        if self.exploration_rate > self.exploration_min and not self.exploration_steps:
            self.exploration_rate *= self.exploration_decay


def recompile(model, loss):
    """Compile model with another loss, keeping its optimizer and its state."""
    model.compile(loss=loss, optimizer=model.optimizer)


# -- Fast calls: what predict() and fit() stand in for ----------------------------

class NumpyForward:
    """brain.predict(state), in NumPy: the brain's own layers on its weights.

    It reads the layers of whatever network _build_model built: other widths,
    more layers, other activations. A layer it cannot compute stops the program
    when the brain is built, in one line, rather than let act() follow another
    function than the network's; and it checks its numbers against Keras's on
    random states there, whatever the layers are.
    """
    ACTIVATIONS = {
        "linear": lambda x: x,
        "relu": lambda x: np.maximum(x, 0),
        "relu6": lambda x: np.clip(x, 0, 6),
        "leaky_relu": lambda x: np.where(x >= 0, x, 0.2 * x),
        "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        "selu": lambda x: 1.0507009873554805 * np.where(
            x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0))),
        "tanh": np.tanh,
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
        "silu": lambda x: x / (1 + np.exp(-x)),
        "softplus": lambda x: np.logaddexp(x, 0),
        "softsign": lambda x: x / (1 + np.abs(x)),
    }

    def __init__(self, model, state_size):
        self.layers = [self.layer_plan(layer) for layer in model.layers]
        states = np.random.default_rng(0).normal(size=(16, state_size)).astype(np.float32)
        keras_says = np.asarray(model(states, training=False))
        ours = self(model.get_weights(), states)
        if not np.allclose(ours, keras_says, rtol=1e-4, atol=1e-4):
            raise UsageError(
                "predict() runs the brain's layers in NumPy and got other numbers than "
                f"Keras for this network (by up to {np.abs(ours - keras_says).max():.2g}); "
                "build it from Dense layers in a Sequential, one after another")

    def layer_plan(self, layer):
        """(its function of the inputs and its weights, how many weights it has)."""
        if isinstance(layer, (keras.layers.InputLayer, keras.layers.Dropout)):
            return (lambda inputs, weights: inputs), 0   # Dropout: off outside training
        if not isinstance(layer, (Dense, keras.layers.Activation)):
            raise UsageError(f"predict() runs the brain in NumPy and cannot run its layer "
                             f"{layer.name!r} ({type(layer).__name__}): it runs Dense, "
                             "Activation and Dropout layers")
        name = keras.activations.serialize(layer.activation)
        if name not in self.ACTIVATIONS:
            raise UsageError(f"predict() runs the brain in NumPy and does not know the "
                             f"activation {name!r} of layer {layer.name!r}; it knows "
                             + ", ".join(self.ACTIVATIONS))
        function = self.ACTIVATIONS[name]
        if isinstance(layer, keras.layers.Activation):
            return (lambda inputs, weights: function(inputs)), 0
        if layer.use_bias:
            return (lambda inputs, w: function(dense(inputs, w[0]) + w[1])), 2
        return (lambda inputs, w: function(dense(inputs, w[0]))), 1

    def __call__(self, weights, state):
        output, first = state, 0
        for function, count in self.layers:
            output = function(output, weights[first:first + count])
            first += count
        return output


def dense(inputs, kernel):
    """inputs @ kernel, summed in the same order on every CPU.

    NumPy's @ hands the sum to a BLAS library, which picks code for the CPU it
    finds (AVX-512, AVX2, ...), and each adds the products in its own order:
    the last bits differ, and after a thousand episodes so does the path a seed
    takes. Broadcasting and summing over the middle axis adds one input after
    another, in order, whatever the CPU.
    """
    return (inputs[:, :, None] * kernel).sum(axis=1)


class TrainStep:
    """brain.fit(x, y, epochs=1, verbose=0) on one batch, without fit's set-up.

    The step itself is Keras's: model.train_step, which fit calls for every
    batch (the loss the model was compiled with, its regularizers, its
    optimizer). It is traced once into a TensorFlow graph and then called
    directly: under a millisecond, against tens for fit. Python code in it
    runs only while tracing; it is traced again if the model is compiled again.
    """

    def __init__(self, model):
        self.model, self.compiled_for, self.graph = model, None, None

    def __call__(self, *inputs):
        model = self.model
        if self.compiled_for != (id(model.loss), id(model.optimizer)):
            self.compiled_for = (id(model.loss), id(model.optimizer))
            self.graph = self.trace(self.step, *self.signature(inputs))
        return call_graph(self.graph, inputs)

    def trace(self, function, *signature):
        """function as a graph for these inputs, with the optimizer's variables
        made first: a graph cannot create them on its first call."""
        if not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        return tf.function(function).get_concrete_function(*signature)

    def step(self, states, target_f):
        self.model.train_step((states, target_f))
        return [weight.value for weight in self.model.weights]   # for predict()

    @staticmethod
    def signature(inputs):
        """Any number of rows, so that one graph serves every batch size."""
        return [tf.TensorSpec((None, *np.shape(x)[1:]), tf.as_dtype(np.asarray(x).dtype))
                for x in inputs]


def call_graph(graph, inputs):
    """graph(*inputs) for a traced graph whose inputs are all arrays; returns
    its outputs as NumPy arrays.

    The public call, graph(*inputs), first matches the inputs against the
    graph's signature once more, which costs more here than the graph itself
    (0.74 ms against 0.14 for seven inputs, measured in one process). Each
    graph here is traced for one fixed signature, so the check can only pass:
    _call_flat runs the graph without it. Where a TensorFlow has no
    _call_flat, the public call runs instead.
    """
    tensors = [tf.constant(x) for x in inputs]
    run = getattr(graph, "_call_flat", None)
    outputs = run(tensors, graph.captured_inputs) if run else graph(*tensors)
    return [output.numpy() for output in tf.nest.flatten(outputs)]


class ReplayStep(TrainStep):
    """TargetAgent.replay's maths, as one graph: the targets for the whole
    sample, then Keras's train_step on each half, as fit(batch_size=32) does.

    gamma and tau are passed in at every call, and a graph is traced for each
    value of double and each loss, so that changing agent.gamma, agent.tau,
    agent.double or agent.loss takes effect in the next replay.
    """

    def __init__(self, agent):
        super().__init__(agent._brain)
        self.agent, self.graphs = agent, {}

    def __call__(self, sample, sync):
        agent = self.agent
        key = (id(self.model.loss), id(self.model.optimizer), agent.double, sync, sample.shape)
        if key not in self.graphs:
            scalar = tf.TensorSpec((), tf.float32)
            self.graphs[key] = self.trace(self.replay, tf.TensorSpec(sample.shape, tf.float32),
                                          scalar, scalar, agent.double, sync)
        return call_graph(self.graphs[key],
                          (sample, np.float32(agent.gamma), np.float32(agent.tau)))

    def replay(self, sample, gamma, tau, double, sync):
        brain, target_brain = self.model, self.agent.target_brain
        states, actions, rewards, next_states, dones, steps = ReplayBuffer.columns(
            sample, self.agent.state_size)
        actions = tf.cast(actions, tf.int32)
        # Source: `next_qs = self.target_model.predict(next_states)`, then a loop
        # over the sample: reward if done, else reward + gamma * max(next_qs[i]).
        next_q = target_brain(next_states)
        if double:
            # Double DQN: the brain picks the next action and the target network
            # values it, so that one network's overestimates are not both chosen
            # and believed.
            best = tf.argmax(brain(next_states), axis=1, output_type=tf.int32)
            future = tf.gather(next_q, best, batch_dims=1)
        else:
            future = tf.reduce_max(next_q, axis=1)
        # steps: 1, as in the source, or more with --n-step (rewards holds their sum).
        targets = rewards + gamma ** steps * future * (1 - dones)
        # Source: `target_qs = self.main_model.predict(states)`, with the action taken set.
        rows = tf.range(tf.shape(actions)[0])
        target_qs = tf.tensor_scatter_nd_update(brain(states), tf.stack([rows, actions], 1),
                                                targets)
        # Source: `self.main_model.fit(states, target_qs, epochs=1, verbose=0, batch_size=32)`,
        # whose shuffle draws the halves at random. The sample is in random
        # order already, so taking it in that order is the same draw.
        half = 32
        for start in range(0, states.shape[0], half):
            brain.train_step((states[start:start + half], target_qs[start:start + half]))
        if sync:   # as update_target_network(), in the graph
            for old, new in zip(target_brain.weights, brain.weights):
                old.assign(tau * new + (1 - tau) * old)
        return [weight.value for weight in brain.weights]


# -- Hyperparameters and the command line -------------------------------------------

def set_hyperparameters(agent, values):
    """Change an agent's hyperparameters by name, before its brain is built.

    A weight file to resume says the sizes of its own hidden layers, so that a
    file trained with --hidden 64 64 resumes and plays with no flag.
    """
    for name, value in values.items():
        if name == "memory_size":
            agent.memory = deque(maxlen=value)
        elif hasattr(agent, name):
            setattr(agent, name, value)
        else:
            raise TypeError(f"{type(agent).__name__} has no hyperparameter {name}")
    if os.path.isfile(agent.weight_backup) and not agent.fresh:
        found = hidden_layers_in(agent.weight_backup)
        if found is not None and "hidden_layers" in values and found != tuple(values["hidden_layers"]):
            raise UsageError(
                f"--hidden {' '.join(map(str, values['hidden_layers']))}, but "
                f"{agent.weight_backup} holds hidden layers of {' '.join(map(str, found))}: "
                "drop --hidden to resume it, or add --fresh to start a new network")
        agent.hidden_layers = found or agent.hidden_layers


def hidden_layers_in(path):
    """The sizes of a weight file's hidden layers, from its numbers alone (the
    shapes of its kernels); None if it holds no such thing (load_weights then
    says what is wrong with it)."""
    import h5py   # Keras's own dependency, for .h5 files
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            kernels = [group[layer][name].shape for layer in group.attrs["layer_names"]
                       for name in group[layer].attrs["weight_names"]
                       if str(name).split("/")[-1].startswith("kernel")]
    except (OSError, KeyError, ValueError):
        return None
    return tuple(int(shape[1]) for shape in kernels[:-1]) if kernels else None


AGENTS = {"tutorial": Agent, "target": TargetAgent}
# The values that CartPole, not the agent, holds, where the two sources differ.
RUN_DEFAULTS = {"tutorial": dict(episodes=10000, batch_size=32, train_every="episode"),
                "target": dict(episodes=500, batch_size=64, train_every=1)}
# The recipe (README, "Recipe"): the target agent with the changes that made it
# solve CartPole-v1 on five seeds out of five, each measured in benchmarks/ablation.sh.
RECIPE = dict(agent="target", hidden_layers=[64, 64], sync_by="replay", sync_every=1,
              tau=0.1, double=True, exploration_steps=5000, n_step=5, gamma=0.995,
              train_every=4, batch_size=128)


def recipe_flags():
    """The flags that --recipe stands for, as a user would type them."""
    words = ["--agent", RECIPE["agent"]]
    for name, value in RECIPE.items():
        flag = "--hidden" if name == "hidden_layers" else "--" + name.replace("_", "-")
        if value is True:
            words.append(flag)
        elif name != "agent":
            words += [flag, *map(str, value if isinstance(value, list) else [value])]
    return " ".join(words)


AGENT_FLAGS = ["gamma", "learning_rate", "memory_size", "exploration_decay", "exploration_min",
               "hidden_layers"]
TARGET_ONLY = ["sync_every", "sync_by", "tau", "double", "loss", "clip_norm",
               "exploration_steps", "n_step"]


def hyperparameters(args):
    """The agent attributes that flags set; a flag not given keeps the source's value."""
    return {name: getattr(args, name) for name in AGENT_FLAGS + TARGET_ONLY
            if getattr(args, name) is not None}


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
    parser.add_argument("--episodes", type=bounded(int, 1),
                        help="episodes to train (default: 10000; 500 for --agent target)")
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
    parser.add_argument("--agent", choices=AGENTS,
                        help="tutorial: the tutorial's DQN (default); target: the second "
                             "source's DQN with a target network")
    parser.add_argument("--recipe", action="store_true",
                        help="the target agent with the recipe's settings, which other "
                             "flags still change: " + recipe_flags())
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
    knobs.add_argument("--hidden", dest="hidden_layers", type=bounded(int, 1), nargs="+",
                       metavar="N", help="hidden layer sizes (default: 24 24; a weight "
                                         "file to resume keeps its own)")
    target_only = parser.add_argument_group("target agent only")
    target_only.add_argument("--sync-every", type=bounded(int, 1), metavar="N",
                             help="sync the target network every N episodes (default 10)")
    target_only.add_argument("--sync-by", choices=["episode", "replay"],
                             help="count --sync-every in episodes (default) or in replays")
    target_only.add_argument("--tau", type=bounded(float, 1e-6, 1),
                             help="share of the brain a sync copies (default 1: all; "
                                  "below 1: a soft update)")
    target_only.add_argument("--double", action="store_true", default=None,
                             help="Double DQN targets")
    target_only.add_argument("--loss", choices=["mse", "huber"], help="default: mse")
    target_only.add_argument("--clip-norm", type=bounded(float, 1e-6), metavar="C",
                             help="clip the gradients' global norm to C (default: no clipping)")
    target_only.add_argument("--n-step", type=bounded(int, 1), metavar="N",
                             help="learn from N-step returns (default 1: one step)")
    target_only.add_argument("--exploration-steps", type=bounded(int, 1), metavar="N",
                             help="decay exploration linearly to its floor over N steps, "
                                  "instead of once per episode")
    args = parser.parse_args(argv)
    if args.recipe:
        if args.agent == "tutorial":
            parser.error("--recipe is for the target agent: drop --agent tutorial")
        for name, value in RECIPE.items():
            if getattr(args, name) is None:
                setattr(args, name, value)
    args.agent = args.agent or "tutorial"
    for name in TARGET_ONLY:
        if getattr(args, name) is not None and args.agent != "target":
            parser.error(f"--{name.replace('_', '-')} needs --agent target")
    if args.video and not args.play:
        parser.error("--video records --play games: add --play N")
    if args.video and args.render:
        parser.error("--video and --render draw in different ways: choose one")
    for name, value in RUN_DEFAULTS[args.agent].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


# -- Reporting: the episode lines, --log, --plot and the solved bar -------------------

class Progress:
    """Prints each episode's line, and keeps it for --log, --plot and --stop-at."""
    COLUMNS = ["episode", "score", "avg100", "exploration", "seconds", "steps"]

    def __init__(self, options):
        self.stop_at, self.plot_path = options.stop_at, options.plot
        self.log = open(options.log, "w", newline="", buffering=1) if options.log else None
        if self.log:   # a row at a time, flushed, so that an interrupted run keeps it
            self.writer = csv.DictWriter(self.log, self.COLUMNS)
            self.writer.writeheader()
        self.history = []   # a row per episode, as the CSV has them
        self.start = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *error):
        if self.log:
            self.log.close()
        if self.plot_path and self.history:
            learning_curve(self.history).savefig(self.plot_path, dpi=100)

    @property
    def steps(self):
        """Environment steps so far, in all episodes."""
        return self.history[-1]["steps"] if self.history else 0

    def episode(self, index_episode, score, agent):
        last_100 = [row["score"] for row in self.history[-99:]] + [score]
        row = dict(episode=index_episode, score=score, avg100=np.mean(last_100),
                   exploration=agent.exploration_rate,
                   seconds=time.perf_counter() - self.start, steps=self.steps + score)
        # Logged before it is printed, so that an episode the user saw is in the CSV.
        self.history.append(row)
        if self.log:
            self.writer.writerow({**row, "avg100": f"{row['avg100']:.2f}",
                                  "exploration": f"{row['exploration']:.5f}",
                                  "seconds": f"{row['seconds']:.3f}"})
        print("Episode {episode}# Score: {score}  avg100: {avg100:.1f}  "
              "exploration: {exploration:.3f}".format(**row), flush=True)

    def solved(self):
        # CartPole-v1 counts as solved when 100 episodes in a row average at least
        # 475 (env.spec.reward_threshold); --stop-at moves the bar, 0 never stops.
        average = self.history[-1]["avg100"] if self.history else 0
        if self.stop_at > 0 and len(self.history) >= 100 and average >= self.stop_at:
            print(f"Solved: the last 100 episodes average {average:.1f} >= {self.stop_at:g}")
            return True
        return False


def learning_curve(history):
    """Score, last-100 average and the solved bar; exploration on a second axis.

    A matplotlib Figure made without pyplot, so that no backend is chosen or
    switched: savefig() writes a file anywhere, and in a notebook it shows
    inline as the value of a cell, whatever the kernel's backend.
    """
    from matplotlib.figure import Figure

    class Curve(Figure):
        def _repr_png_(self):   # what Jupyter asks a cell's value for
            picture = io.BytesIO()
            self.savefig(picture, format="png", dpi=100)
            return picture.getvalue()

    episodes = [row["episode"] for row in history]
    figure = Curve(figsize=(8, 4.5))
    scores_axis = figure.add_subplot()
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
    return figure


# -- Watching, playing and recording --------------------------------------------------

def render_mode(args):
    """--render draws in a window; --video draws into memory, frame by frame."""
    if args.render:
        open_window()
        return "human"
    return "rgb_array" if args.video else None


def open_window():
    """Check for a display before --render draws: without one, SDL quietly falls
    back to an invisible 'offscreen' window, on which CartPole's renderer crashes."""
    wanted = os.environ.get("SDL_VIDEODRIVER")
    if not wanted and no_display():
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


def no_display():
    """True on a Linux machine with neither an X nor a Wayland display to draw on."""
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def play(env, agent, episodes, seed=None):
    """Play greedy episodes (no exploration, no training); returns the scores."""
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


def play_saved(args):
    if not os.path.isfile(args.weights):
        raise UsageError(f"no weight file at {args.weights}: train first, "
                         "or point --weights at one")
    env = gym.make('CartPole-v1', render_mode=render_mode(args))
    if args.video:
        env = record_video(env, args.video)
    try:
        agent = AGENTS[args.agent](env.observation_space.shape[0], int(env.action_space.n),
                                   args.weights, **hyperparameters(args))
        play(env, agent, args.play, args.seed)
    finally:
        env.close()   # RecordVideo writes the last video here
    return 0


def record_video(env, folder):
    """Record every episode as an MP4 in folder, drawn off-screen (no display needed)."""
    # Frames are drawn into memory, so pygame needs no display. Where there is
    # none, SDL would probe for one and complain about each it cannot find.
    if no_display():
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    return gym.wrappers.RecordVideo(env, folder, episode_trigger=lambda episode: True,
                                    name_prefix="cartpole")


# -- Safety: signals, paths, weight files ---------------------------------------------

class UsageError(Exception):
    """A problem with the command line or the machine, reported in one line."""


class WeightFileError(Exception):
    """The weight file cannot be used: reported in one line, never overwritten."""


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
    exceptions and raises others in their place (a TypeError instead of the
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
        """Handle Ctrl-C and kill by noting them, also in a background job
        started with Ctrl-C ignored. Returns the handlers that were there, or
        None where signals cannot be handled (only Python's main thread can)."""
        if threading.current_thread() is not threading.main_thread():
            return None
        previous = {signum: signal.signal(signum, cls.note) for signum in cls.SIGNALS}
        if hasattr(signal, "pthread_sigmask"):
            # Run as a script, the signals were held back while the libraries
            # loaded (see the imports); one that came meanwhile is noted now.
            signal.pthread_sigmask(signal.SIG_UNBLOCK, set(cls.SIGNALS))
        return previous

    @classmethod
    def handling(cls):
        return signal.getsignal(signal.SIGINT) is cls.note

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


def require(module, flag):
    try:
        __import__(module)
    except ImportError:
        raise UsageError(f"{flag} needs {module}: pip install {module}") from None


def load_weights(model, path):
    """model.load_weights(path), or one line that says why not.

    load_weights reads numbers only; it never builds a model from the file,
    so a weight file cannot run code.
    """
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as error:
        reason = str(error).split(".")[0].strip() or type(error).__name__
        raise WeightFileError(
            f"cannot load {path}: {reason}. It was left as it is; "
            f"use --fresh to train from scratch, or --weights PATH for another file"
        ) from None


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
    keras_log = logging.getLogger("absl")
    level = keras_log.level
    try:
        # Keras warns that a whole model in .h5 is a legacy format; the file keeps
        # the tutorial's name on purpose, and only its weights are read back.
        keras_log.setLevel(logging.ERROR)
        model.save(temporary)
        if os.path.exists(path):
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())   # on disk before the rename makes it the file
        os.replace(temporary, path)
    finally:
        keras_log.setLevel(level)
        if os.path.exists(temporary):
            os.remove(temporary)


if __name__ == "__main__":
    sys.exit(main())
