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
import logging
import os
import random
import signal
import sys
import tempfile
from collections import deque

import numpy as np
# Tutorial: `import gym`. Gymnasium is the maintained Gym; gym 0.26 crashes on NumPy 2.
import gymnasium as gym
import keras
import tensorflow as tf
from keras.layers import Dense
from keras.models import Sequential
from keras.optimizers import Adam


class WeightFileError(Exception):
    """The weight file cannot be used: it is reported in one line, never overwritten."""


# 0# DQL Agent
class Agent():
    def __init__(self, state_size, action_size, weight_backup="cartpole_weight.h5",
                 fresh=False):
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
        self.brain              = self._build_model(fresh)

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
        # Tutorial: self.brain.save(self.weight_backup). Written to a temporary
        # file in the same folder and then renamed over the old one in one step,
        # so a run killed while saving leaves the old file or the new one,
        # never half of one.
        folder = os.path.dirname(os.path.abspath(self.weight_backup))
        handle, temporary = tempfile.mkstemp(suffix=".h5", prefix=".cartpole-", dir=folder)
        os.close(handle)
        try:
            self.brain.save(temporary)
            os.replace(temporary, self.weight_backup)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)

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
        # brain's current weights costs ~0.01 ms; tests check it against predict().
        layers = list(zip(self._weights[0::2], self._weights[1::2]))
        output = state
        for kernel, bias in layers[:-1]:
            output = np.maximum(output @ kernel + bias, 0.0)
        kernel, bias = layers[-1]
        return output @ kernel + bias

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
        self._replay_samples(*stack(sample_batch))
        self._weights = self.brain.get_weights()
        # Explore less as the agent learns; this is where epsilon decays.
        # Tutorial: `if rate > min: rate *= decay`, which ends just below the
        # minimum (0.00999); max() keeps the floor exact.
        if self.exploration_rate > self.exploration_min:
            self.exploration_rate = max(self.exploration_min,
                                        self.exploration_rate * self.exploration_decay)

    @tf.function
    def _replay_samples(self, states, actions, rewards, next_states, dones):
        for i in tf.range(tf.shape(states)[0]):
            state, next_state = states[i:i + 1], next_states[i:i + 1]
            target = rewards[i]
            if not dones[i]:
                # Worth of the next state: its best Q-value, discounted by gamma.
                target = rewards[i] + self.gamma * tf.reduce_max(self.brain(next_state))
            self._fit(state, actions[i:i + 1], target[None])

    def _fit(self, states, actions, targets):
        # One gradient step, as brain.fit(state, target_f, epochs=1) takes it:
        # target_f is the brain's own prediction with the taken action's value
        # replaced by its target, so only that action's error is learned.
        with tf.GradientTape() as tape:
            q_values = self.brain(states, training=True)
            target_f = tf.tensor_scatter_nd_update(
                tf.stop_gradient(q_values),
                tf.stack([tf.range(tf.shape(actions)[0]), actions], axis=1), targets)
            loss = tf.reduce_mean(keras.losses.get(self.brain.loss)(target_f, q_values))
        gradients = tape.gradient(loss, self.brain.trainable_variables)
        self.brain.optimizer.apply(gradients, self.brain.trainable_variables)


def stack(sample_batch):
    """Turn a list of (state, action, reward, next_state, done) into five arrays."""
    states, actions, rewards, next_states, dones = zip(*sample_batch)
    return (np.concatenate(states).astype(np.float32), np.array(actions, np.int32),
            np.array(rewards, np.float32), np.concatenate(next_states).astype(np.float32),
            np.array(dones, bool))


class Terminated(Exception):
    """Raised by the SIGTERM handler so that `kill` runs the `finally` save too."""


# 1# main() function
class CartPole:
    def __init__(self, episodes=10000, weights="cartpole_weight.h5", fresh=False,
                 render=False, stop_at=475.0, seed=None):
        self.sample_batch_size = 32
        self.episodes          = episodes
        # Tutorial: gym.make('CartPole-v1') and an env.render() to uncomment. In
        # Gymnasium the window is chosen at make(): --render asks for it.
        if render:
            open_window()
        self.env               = gym.make('CartPole-v1', render_mode="human" if render else None)
        self.state_size        = self.env.observation_space.shape[0]
        # Gymnasium's n is a NumPy integer, which Keras 3's Dense(units) refuses.
        self.action_size       = int(self.env.action_space.n)
        self.agent             = Agent(self.state_size, self.action_size, weights, fresh)
        self.stop_at           = stop_at
        self.seed              = seed

    def run(self):
        scores = []
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
                # Tutorial: index + 1, one more than the steps the pole stayed up.
                scores.append(index)
                average = np.mean(scores[-100:])
                print("Episode {}# Score: {}  avg100: {:.1f}  exploration: {:.3f}".format(
                    index_episode, index, average, self.agent.exploration_rate), flush=True)
                self.agent.replay(self.sample_batch_size)
                if solved(scores, self.stop_at):
                    print(f"Solved: the last 100 episodes average {average:.1f} >= {self.stop_at:g}")
                    break
        finally:
            self.agent.save_model()
            print(f"Weights saved to {self.agent.weight_backup}", flush=True)


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


def check_writable(path):
    """Fail now, not after hours of training, if `path` cannot be written."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror} ({folder})") from None


def play(env, agent, episodes):
    """Play greedy episodes with the saved weights (no exploration, no training)."""
    agent.exploration_rate = 0.0
    scores = []
    for index_episode in range(episodes):
        state, _ = env.reset()
        done = False
        index = 0
        while not done:
            action = agent.act(np.reshape(state, [1, -1]))
            state, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            index += 1
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
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    # Keras warns that a full model in .h5 is a legacy format; the tutorial's
    # file name is kept on purpose, and only its weights are ever read back.
    logging.getLogger("absl").setLevel(logging.ERROR)
    if args.seed is not None:
        # One place seeds Python, NumPy and TensorFlow; the environment gets
        # the same seed in reset() and for its own random actions.
        keras.utils.set_random_seed(args.seed)
    try:
        if args.play:
            return play_saved(args)
        check_writable(args.weights)
        cartpole = CartPole(args.episodes, args.weights, args.fresh, args.render,
                            args.stop_at, args.seed)
    except (UsageError, WeightFileError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.seed is not None:
        cartpole.env.action_space.seed(args.seed)
    # `kill` sends SIGTERM, which would end Python without running `finally`.
    signal.signal(signal.SIGTERM, raise_terminated)
    try:
        cartpole.run()
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
    env = gym.make('CartPole-v1', render_mode="human" if args.render else None)
    if args.seed is not None:
        env.reset(seed=args.seed)
    agent = Agent(env.observation_space.shape[0], int(env.action_space.n), args.weights)
    play(env, agent, args.play)
    return 0


def raise_terminated(signum, frame):
    raise Terminated()


if __name__ == "__main__":
    sys.exit(main())
