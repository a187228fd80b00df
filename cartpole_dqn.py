"""Deep Q-Learning on CartPole, with Keras and Gymnasium.

The tutorial "My Journey Into Deep Q-Learning with Keras and Gym" (in Korean, "Keras 와 Gym 과
함께하는 Deep Q-Learning 을 향한 여행", Keras Korea, 2018) on the latest libraries: its Agent and
CartPole first, in its order. "Tutorial:" marks a changed line, "Not in the tutorial:" an added one.

    python cartpole_dqn.py               # train; it resumes from cartpole_weight.h5
    python cartpole_dqn.py --render      # watch it learn (or uncomment self.env.render())
    python cartpole_dqn.py --play 10     # play 10 games with the trained network
"""
import os
import random
import sys
from collections import deque

# Not in the tutorial: one path per seed on every CPU, TensorFlow's errors only (yours win).
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gymnasium as gym  # Tutorial: `import gym`. Gymnasium is the maintained Gym.
import keras
import numpy as np
from keras.layers import Dense
from keras.models import Sequential
from keras.optimizers import Adam


# 0# DQL Agent
class Agent():
    # Tutorial: `def __init__(self, state_size, action_size):`. Also --weights, --fresh, the flags.
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
        read_network(self, hyperparameters)   # Not in the tutorial: the layers a file records
        self.brain              = self._build_model()

    def _build_model(self):
        # Neural Net for Deep-Q learning Model: a state in, one Q-value per action out.
        model = Sequential()
        # Tutorial: `model.add(Dense(24, input_dim=self.state_size, activation='relu'))`.
        # Keras 3 has no input_dim: an Input gives the input's shape.
        model.add(keras.Input(shape=(self.state_size,)))
        # Tutorial: `model.add(Dense(24, activation='relu'))`, twice: the sizes of --hidden.
        for units in self.hidden_layers:
            model.add(Dense(units, activation='relu'))
        model.add(Dense(self.action_size, activation='linear'))
        # Tutorial: `Adam(lr=self.learning_rate)`. Keras 3 only takes learning_rate=.
        model.compile(loss='mse', optimizer=Adam(learning_rate=self.learning_rate))
        # Tutorial: `if os.path.isfile(self.weight_backup):`. --fresh ignores the file.
        if os.path.isfile(self.weight_backup) and not self.fresh:
            # Tutorial: `model.load_weights(self.weight_backup)`; a bad file stops in one line.
            load_weights(model, self.weight_backup)
            self.exploration_rate = self.exploration_min
        return model

    def save_model(self):
        # Tutorial: `self.brain.save(self.weight_backup)`. All or nothing, with the layers' sizes.
        save(self.brain, self.weight_backup, self.hidden_layers)

    def act(self, state):
        # 4# Act: explore at random with probability exploration_rate; otherwise take the
        # action whose predicted Q-value (future reward) is highest.
        if np.random.rand() <= self.exploration_rate:
            return random.randrange(self.action_size)
        # Tutorial: `act_values = self.brain.predict(state)`. See predict() below.
        act_values = self.predict(state)
        return np.argmax(act_values[0])

    def remember(self, state, action, reward, next_state, done):
        # 2# Remember: keep every step, so that replay() can learn from it later.
        self.memory.append((state, action, reward, next_state, done))

    def replay(self, sample_batch_size):
        # 3# Replay: learn from a random sample of memories, not from the last steps alone:
        # steps in a row are too alike to learn from.
        if len(self.memory) < sample_batch_size:
            return
        sample_batch = random.sample(self.memory, sample_batch_size)
        for state, action, reward, next_state, done in sample_batch:
            # The target: the reward, plus, unless the pole fell, the discounted value of
            # the best action from the next state (the Q-learning rule).
            target = reward
            if not done:
                # Tutorial: `np.amax(self.brain.predict(next_state)[0])`. See predict().
                target = reward + self.gamma * np.amax(self.predict(next_state)[0])
            # Tutorial: `target_f = self.brain.predict(state)`.
            target_f = self.predict(state)
            # Only the action taken gets a new target, so fit learns from its error alone.
            target_f[0][action] = target
            # Tutorial: `self.brain.fit(state, target_f, epochs=1, verbose=0)`. See fit().
            self.fit(state, target_f)
        # Easy to miss: exploration decays once per replay, so once per episode, not per step.
        if self.exploration_rate > self.exploration_min:
            self.exploration_rate *= self.exploration_decay

    # Not in the tutorial: brain.predict and brain.fit set up a whole Keras loop at each call,
    # tens of milliseconds for one state. These two do the same maths without it (FastBrain).
    def predict(self, state):
        """self.brain.predict(state): the brain's layers, run in NumPy."""
        return fast(self).predict(state)

    def fit(self, state, target_f):
        """self.brain.fit(state, target_f, epochs=1, verbose=0): Keras's own train_step."""
        fast(self).fit(state, target_f)

    def end_episode(self, index_episode):
        """Nothing: the tutorial's agent learns in replay(). TargetAgent syncs here."""


# 1# main() function
class CartPole:
    # Tutorial: `def __init__(self):`, its values written in. Flags carry them now (parse_args).
    def __init__(self, args=None):
        args = args or parse_args([])
        self.sample_batch_size = args.batch_size
        self.episodes          = args.episodes
        # Tutorial: `gym.make('CartPole-v1')`. Gymnasium opens its window at make(), for
        # --render or for the render line below, uncommented (see Window).
        self.env               = Window.wrap(gym.make('CartPole-v1', render_mode=Window.mode(args)))
        self.state_size        = self.env.observation_space.shape[0]
        # Tutorial: `self.env.action_space.n`. Keras 3's Dense refuses NumPy's integer.
        self.action_size       = int(self.env.action_space.n)
        # Tutorial: `Agent(self.state_size, self.action_size)`. Or the second source's agent.
        self.agent             = AGENTS[args.agent](self.state_size, self.action_size,
                                                    args.weights, args.fresh,
                                                    **hyperparameters(args))
        self.options           = args

    def run(self):
        # Not in the tutorial: Ctrl-C stops between two steps; Progress keeps the checkpoints.
        with Stop(), Progress(self) as self.progress:
            try:
                for index_episode in range(self.episodes):
                    # Tutorial: `state = self.env.reset()`. Gymnasium returns (state, info).
                    state, _ = self.env.reset(seed=None if index_episode else self.options.seed)
                    state = np.reshape(state, [1, self.state_size])
                    done = False
                    index = 0
                    while not done:
                        # Tutorial: `#                    self.env.render()`. Uncomment it:
                        #self.env.render()
                        action = self.agent.act(state)
                        # Tutorial: `next_state, reward, done, _ = self.env.step(action)`.
                        # Gymnasium tells a fall (terminated) from the time limit (truncated).
                        next_state, reward, terminated, truncated, _ = self.env.step(action)
                        done = terminated or truncated
                        next_state = np.reshape(next_state, [1, self.state_size])
                        # Tutorial: `self.agent.remember(state, action, reward, next_state, done)`.
                        # The time limit is no fall: the future after it still counts.
                        self.agent.remember(state, action, reward, next_state, terminated)
                        # Easy to miss: the next step starts from where this one ended.
                        state = next_state
                        index += 1
                        self.progress.step()   # Not in the tutorial: the target agent's replays
                    # Tutorial: `print("Episode {}# Score: {}".format(index_episode, index + 1))`.
                    # index already counts the steps; the line adds the last-100 average.
                    self.progress.episode(index_episode, index)
                    # Tutorial: `self.agent.replay(self.sample_batch_size)`; or in progress.step().
                    if self.options.train_every == "episode":
                        self.agent.replay(self.sample_batch_size)
                    # Not in the tutorial: the target agent syncs here, and a solved run stops.
                    self.agent.end_episode(index_episode)
                    if self.progress.solved():
                        break
            finally:
                self.agent.save_model()
                # Not in the tutorial: one line says where the training went.
                print(f"Weights saved to {self.agent.weight_backup}", flush=True)


# Tutorial: `cartpole = CartPole()` and `cartpole.run()` under `if __name__ == "__main__":`, which
# ends the file. Here the flags are read first, and each way a run ends has its exit status.
def main(argv=None):
    try:
        with Stop():
            args = parse_args(argv)
            check_paths(args)
            if args.seed is not None:
                keras.utils.set_random_seed(args.seed)   # Python's, NumPy's and TensorFlow's
            if args.play:
                return play_saved(args)
            cartpole = CartPole(args)
            cartpole.run()
    except (*ENDINGS, OSError) as ending:
        return end(ending)
    return 0


# ==============================================================================
# Beyond the tutorial
# ==============================================================================
import argparse, csv, errno, inspect, io, re, signal, tempfile, threading, time  # noqa: E401,E402
import tensorflow as tf  # noqa: E402


# -- The second source's agent, with a target network --------------------------------------
class ReplayBuffer:
    """The second source's ReplayBuffer: the last max_size steps, sampled without replacement."""
    # Source: `self.buffer = deque(maxlen=max_size)` of tuples. Here a NumPy table, a row per
    # step (state, next_state, action, reward, done, steps), so that a sample is one array.

    def __init__(self, max_size, state_size):
        self.table = np.zeros((max_size, 2 * state_size + 4), np.float32)
        self.max_size, self.state_size, self.added = max_size, state_size, 0

    def add(self, experience, steps=1):
        state, action, reward, next_state, done = experience
        # When full, the oldest step makes room, as in a deque(maxlen=max_size).
        self.table[self.added % self.max_size] = [*state[0], *next_state[0], action, reward,
                                                  done, steps]
        self.added += 1

    def sample(self, batch_size):
        # Source: `np.random.choice(len(self.buffer), batch_size, replace=False)`, which shuffles
        # the whole buffer each time; random.sample makes the same draw in constant time.
        return self.table[random.sample(range(self.size()), batch_size)]

    def columns(self, rows):
        """states, next_states, actions, rewards, dones and steps, from rows of the table."""
        s = self.state_size
        return rows[:, :s], rows[:, s:2 * s], *(rows[:, 2 * s + i] for i in range(4))

    def size(self):
        return min(self.added, self.max_size)

    __len__ = size


class TargetAgent(Agent):
    """The second source's DQNAgent (a Korean DQN notebook), written as its difference from
    the tutorial's; "Source:" marks each change from it. The tutorial's agent computes its
    targets with the very network it trains, so each fit moves the targets it chases: it
    learns to balance, then often forgets. A target network is the standard remedy.

    Source: `return env.action_space.sample()`. act() is the tutorial's random.randrange: the
    same choice, from the generator that --seed seeds."""

    def __init__(self, state_size, action_size, weight_backup="cartpole_weight.h5",
                 fresh=False, **hyperparameters):
        self.sync_every = 10      # the target network is synced every 10 episodes
        self.tau        = 1.0     # 1: a copy; below 1, a soft update after every replay (--tau)
        self.double     = False   # --double: Double DQN targets
        self.n_step     = 1       # --n-step: rewards summed before the bootstrap
        self.exploration_steps = None   # --exploration-steps: a straight decay over N steps
        self.fit_batch_size = 32  # --fit-batch-size: samples per gradient step, fit(batch_size=32)
        self.steps      = 0       # environment steps remembered so far
        # The second source's gamma and memory; its epsilon values are the tutorial's.
        super().__init__(state_size, action_size, weight_backup, fresh,
                         **{"gamma": 0.99, "memory_size": 50000, **hyperparameters})
        self.memory = ReplayBuffer(self.memory.maxlen, state_size)
        self.recent = []   # this episode's last steps, not yet in memory (--n-step)
        # Source: `target_model`, a copy of the network that computes the targets and changes
        # only at a sync, so that they stand still while the brain learns to meet them.
        self.target_brain = keras.models.clone_model(self.brain)
        self.target_brain.set_weights(self.brain.get_weights())
        self.exploration_start = self.exploration_rate

    def update_target_network(self):
        # Source: `self.target_model.set_weights(self.main_model.get_weights())`. soft_update
        # with tau 1 is the same copy, in TensorFlow, as the replay graph's soft updates are.
        soft_update(self.target_brain, self.brain, 1.0)

    def remember(self, state, action, reward, next_state, done):
        # Source: `done = done or truncated`, stored. Here done is terminated (see run()).
        self.recent.append((state, action, reward, next_state, done))
        if done or len(self.recent) == self.n_step:
            self.store_recent(everything=done)
        self.steps += 1
        if self.exploration_steps:   # a straight line down to exploration_min over N steps
            share = min(1.0, self.steps / self.exploration_steps)
            self.exploration_rate = self.exploration_start + share * (
                self.exploration_min - self.exploration_start)

    def replay(self, sample_batch_size):
        # Source: train(), a sample of 64, its targets from the target network, then
        # fit(batch_size=32), two gradient steps; here all in one graph (replay_graph).
        if self.memory.size() >= sample_batch_size:
            fast(self).run(self.replay_graph, self.memory.sample(sample_batch_size),
                           np.float32(self.gamma), np.float32(self.tau), static=(self.double,))

    def replay_graph(self, sample, gamma, tau, double):
        states, next_states, actions, rewards, dones, steps = self.memory.columns(sample)
        actions = tf.cast(actions, tf.int32)
        # Source: `next_qs = self.target_model.predict(next_states)`, then a loop: the reward
        # if done, else reward + gamma * max(next_qs[i]).
        next_q = self.target_brain(next_states)
        if double:
            # Double DQN: the brain picks the next action and the target network values it, so
            # that one network's overestimates are not both chosen and believed.
            best = tf.argmax(self.brain(next_states), axis=1, output_type=tf.int32)
            future = tf.gather(next_q, best, batch_dims=1)
        else:
            future = tf.reduce_max(next_q, axis=1)
        # steps is 1, or more with --n-step, whose rewards hold their discounted sum.
        targets = rewards + gamma ** steps * future * (1 - dones)
        # Source: `target_qs = self.main_model.predict(states)`, with the action taken set.
        rows = tf.stack([tf.range(tf.shape(actions)[0]), actions], axis=1)
        target_qs = tf.tensor_scatter_nd_update(self.brain(states), rows, targets)
        # Source: `fit(states, target_qs, epochs=1, verbose=0, batch_size=32)`. Its shuffle
        # draws the halves at random; the sample is in random order already.
        size = self.fit_batch_size
        for start in range(0, sample.shape[0], size):
            fast(self).train_step(states[start:start + size], target_qs[start:start + size])
        if self.tau < 1:   # a soft update: the target network trails the brain smoothly
            soft_update(self.target_brain, self.brain, tau)

    def store_recent(self, everything):
        """Store the oldest recent step, or all at an episode's end, with the rewards after it
        summed in: with --n-step n, a target is r + gamma r' + ... + gamma^n max Q(n steps
        on), so that a fall reaches the step n steps before it in one replay."""
        while self.recent:
            rewards = sum(self.gamma ** k * step[2] for k, step in enumerate(self.recent))
            (state, action, *_), (*_, next_state, done) = self.recent[0], self.recent[-1]
            self.memory.add((state, action, rewards, next_state, done), steps=len(self.recent))
            self.recent.pop(0)
            if not everything:
                return

    def end_episode(self, index_episode):
        if self.recent:
            self.store_recent(everything=True)   # the time limit: bootstrap from there
        # As in the source: a copy on episodes 0, 10, 20, ..., then exploration decays once
        # per episode, however often it trained.
        if self.tau == 1 and index_episode % self.sync_every == 0:
            self.update_target_network()
        if self.exploration_rate > self.exploration_min and not self.exploration_steps:
            self.exploration_rate *= self.exploration_decay


def soft_update(target, brain, tau):
    """Move each of target's weights tau of the way to the brain's, in TensorFlow, so that it
    runs inside a graph too."""
    for old, new in zip(target.weights, brain.weights):
        old.assign(tau * new + (1 - tau) * old)


# -- FastBrain: predict and fit without Keras's per-call set-up -------------------------------

def fast(agent):
    """agent.brain's FastBrain, made anew if agent.brain is another network than before."""
    if getattr(agent, "_fast", None) is None or agent._fast.model is not agent.brain:
        agent._fast = FastBrain(agent.brain)
    return agent._fast


class FastBrain:
    """brain.predict and brain.fit for one sample, the same maths, in microseconds.

    predict() runs the brain's Dense layers in NumPy on a copy of its weights. fit() runs the
    brain's own train_step (its loss, its optimizer) traced once into a TensorFlow graph, which
    also hands back the new weights for the copy. The copy follows any other change, each through
    a method FastBrain wraps to hear of it: set_weights and load_weights call each weight's
    assign(); Keras's own training is a learner's brain.fit or train_on_batch, or an
    optimizer.apply of their own. Another kind of layer is predicted by Keras: the same, slower.
    """
    ACTIVATIONS = {"linear": lambda x: x, "relu": lambda x: np.maximum(x, 0),
                   "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x))}

    def __init__(self, model):
        self.model, self.graphs, self.copy, self.heard, self.adam = model, {}, None, None, False
        for weight in model.weights:
            weight.assign = self.noting(weight.assign)
        model.fit, model.train_on_batch = self.noting(model.fit), self.noting(model.train_on_batch)
        self.layers = [(self.ACTIVATIONS.get(keras.activations.serialize(layer.activation)),
                        layer.use_bias) if isinstance(layer, Dense) else (None, None)
                       for layer in model.layers]
        if not all(activation for activation, _ in self.layers) or not self.agrees_with_keras():
            self.layers = None

    def noting(self, method):
        """method, after which the copy is taken anew."""
        def call_and_note(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            finally:
                self.copy = None
        return call_and_note

    def hear_the_optimizer(self):
        """Wrap apply() of the brain's optimizer, a new one too (compile): reading its step count
        at each predict instead would cost more than the predict itself."""
        optimizer = self.model.optimizer
        if optimizer is not self.heard:
            if optimizer is not None:
                optimizer.apply = self.noting(optimizer.apply)
            self.heard, self.copy = optimizer, None

    def predict(self, state):
        if self.layers is None:
            return self.model.predict_on_batch(state)
        self.hear_the_optimizer()
        if self.copy is None:
            self.copy = self.model.get_weights()
        output, weights = state, iter(self.copy)
        for activation, use_bias in self.layers:
            output = dense(output, next(weights))
            output = activation(output + next(weights) if use_bias else output)
        return output

    def agrees_with_keras(self):
        states = np.random.default_rng(0).normal(size=(16, self.model.input_shape[-1]))
        keras_says = np.asarray(self.model(states.astype(np.float32), training=False))
        return np.allclose(self.predict(states), keras_says, atol=1e-4)

    def fit(self, states, target_f):
        self.run(self.train_step, states, target_f)

    def train_step(self, states, target_f):
        if self.adam:   # decided by run(), before it traces this
            self.adam_step(states, target_f)
        else:
            self.model.train_step((states, target_f))

    def plain_adam(self):
        """Keras's Adam as compile() makes it, with nothing added (a schedule, clipping, weight
        decay, AMSGrad, EMA, loss scaling, accumulation), its two slots a weight after its step
        count and learning rate, as Adam.build() adds them."""
        optimizer, weights = self.model.optimizer, self.model.trainable_variables
        config = optimizer.get_config()
        if type(optimizer) is not keras.optimizers.Adam or optimizer.amsgrad or any(
                config.get(name) for name in ("use_ema", "weight_decay", "clipnorm", "clipvalue",
                                              "global_clipnorm", "loss_scale_factor",
                                              "gradient_accumulation_steps")):
            return False
        slots = list(zip(optimizer.variables[2::2], optimizer.variables[3::2]))
        return isinstance(config["learning_rate"], float) and len(slots) == len(weights) and all(
            m.shape == v.shape == w.shape and m.name.endswith("momentum")
            and v.name.endswith("velocity") for w, (m, v) in zip(weights, slots))

    def adam_step(self, states, target_f):
        """model.train_step's gradient step, with Adam's update as TensorFlow's own Adam kernel,
        one per weight, where Keras runs some twenty small ops per weight: the same formula, a
        quarter of a fit's time saved. The kernel rounds 1 - beta_1 from float32, Keras from
        float64, so the weights agree with Keras's to within 1e-6 (tests check them)."""
        model, optimizer = self.model, self.model.optimizer
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x=states, y=target_f, y_pred=model(states, training=True),
                                      training=True)
        weights, slots = model.trainable_variables, optimizer.variables[2:]
        step = tf.cast(optimizer.iterations.value + 1, tf.float32)
        beta_1, beta_2 = (tf.cast(b, tf.float32) for b in (optimizer.beta_1, optimizer.beta_2))
        for weight, gradient, m, v in zip(weights, tape.gradient(loss, weights), slots[::2],
                                          slots[1::2]):
            tf.raw_ops.ResourceApplyAdam(
                var=weight.value.handle, m=m.value.handle, v=v.value.handle,
                beta1_power=beta_1 ** step, beta2_power=beta_2 ** step,
                lr=tf.cast(optimizer.learning_rate, tf.float32), beta1=beta_1, beta2=beta_2,
                epsilon=tf.cast(optimizer.epsilon, tf.float32), grad=gradient)
        optimizer.iterations.assign_add(1)

    def run(self, function, *inputs, static=()):
        """function(*inputs, *static) as a TensorFlow graph, traced the first time for each
        compile of the brain, shape of inputs and value of static; the copy takes the new
        weights it returns. Each tensor that goes into or out of a graph costs microseconds, so
        the inputs go in as one (float32, as the brain computes) and the weights come out as
        one, which NumPy splits into views."""
        optimizer = self.model.optimizer
        shapes = [np.shape(x) for x in inputs]
        key = (function, id(self.model.loss), id(optimizer), static, *shapes)
        if key not in self.graphs:
            if not optimizer.built:   # a graph cannot create the optimizer's variables
                optimizer.build(self.model.trainable_variables)
            self.adam = self.plain_adam()

            def graph(packed):
                parts = tf.split(packed, [int(np.prod(shape)) for shape in shapes])
                function(*map(tf.reshape, parts, shapes), *static)
                return tf.concat([tf.reshape(tf.cast(w.value, tf.float32), [-1])
                                  for w in self.model.weights], 0)
            size = sum(int(np.prod(shape)) for shape in shapes)
            ends = np.cumsum([int(np.prod(w.shape)) for w in self.model.weights])[:-1]
            self.graphs[key] = (tf.function(graph).get_concrete_function(
                tf.TensorSpec([size], tf.float32)), ends)
        graph, ends = self.graphs[key]
        packed = np.concatenate([np.ravel(x) for x in inputs], dtype=np.float32)
        weights = np.split(graph(tf.constant(packed)).numpy(), ends)
        self.copy = [part.reshape(w.shape) for part, w in zip(weights, self.model.weights)]


def dense(inputs, kernel):
    """inputs @ kernel, summed in the same order on every CPU: NumPy's @ leaves the sum to BLAS,
    which adds in an order of its CPU's choosing, so a seed's path would differ by machine."""
    return (inputs[:, :, None] * kernel).sum(axis=1)


# -- Reporting: the episode lines, checkpoints, the best network, --log, --plot ---------------

class Progress:
    """What run() does between the tutorial's lines: a line per episode (in a notebook, a live
    curve), --log and --plot, the solved bar, the second source's replays after each step, a
    checkpoint every --checkpoint-every seconds, and the best network so far."""
    COLUMNS = ["episode", "score", "avg100", "exploration", "seconds", "steps"]

    def __init__(self, cartpole):
        self.agent, self.options = cartpole.agent, cartpole.options
        self.batch_size, self.steps, self.history = cartpole.sample_batch_size, 0, []
        self.log = self.options.log and open(self.options.log, "w", newline="", buffering=1)
        if self.log:   # a row at a time, flushed, so that a run that is killed keeps its rows
            self.writer = csv.DictWriter(self.log, self.COLUMNS)
            self.log_row(dict(zip(self.COLUMNS, self.COLUMNS)))   # the header
        self.live = Live() if in_a_notebook() else None
        self.best_file = best_file(self.agent.weight_backup)
        self.best, self.best_weights = best_average(self.best_file), None
        self.start = self.saved = self.best_saved = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if self.log:
            self.close_log()
        if self.live and self.history:
            self.live.show(self.history, final=True)
        if not isinstance(error, SaveError):   # after a failed save, its message comes first
            self.save_best()
        try:
            if self.options.plot and self.history:
                Curve().save(self.history, self.options.plot)
        except OSError as failure:
            if not isinstance(error, SaveError):   # else the weights' line says more
                raise SaveError(f"cannot write --plot {self.options.plot} "
                                f"({cause(failure)})") from None

    def log_row(self, row):
        try:
            self.writer.writerow(row)
        except OSError as failure:   # a full disk, say: the run stops, as at a checkpoint
            self.close_log()
            raise SaveError(f"cannot write --log {self.options.log} ({cause(failure)}); "
                            "the run stopped there") from None

    def close_log(self):
        try:
            self.log.close()   # closed even when the last flush fails
        except OSError:   # a row it could not write, which log_row reported
            pass

    def step(self):
        self.steps += 1
        if self.options.train_every != "episode" and self.steps % self.options.train_every == 0:
            self.agent.replay(self.batch_size)
        Stop.check()

    def episode(self, index_episode, score):
        last_100 = [row["score"] for row in self.history[-99:]] + [score]
        row = dict(episode=index_episode, score=score, avg100=np.mean(last_100),
                   exploration=self.agent.exploration_rate,
                   seconds=time.perf_counter() - self.start, steps=self.steps)
        self.history.append(row)   # logged before it is shown: a line seen is a row kept
        if self.log:
            self.log_row({**row, "avg100": f"{row['avg100']:.2f}",
                          "exploration": f"{row['exploration']:.5f}",
                          "seconds": f"{row['seconds']:.3f}"})
        if self.live:
            self.live.show(self.history)
        else:
            print("Episode {episode}# Score: {score}  avg100: {avg100:.1f}  "
                  "exploration: {exploration:.3f}".format(**row), flush=True)
        # The best network: a new best last-100 average (over 100 episodes), better than the
        # best file's, from this run or an earlier one. Kept, and written within 5 s: a write
        # takes milliseconds, and at every new best would slow a run by a few per cent.
        if len(last_100) == 100 and row["avg100"] > self.best:
            self.best, self.best_weights = row["avg100"], self.agent.brain.get_weights()
        if time.perf_counter() - self.best_saved >= 5:
            self.save_best()
        if time.perf_counter() - self.saved >= self.options.checkpoint_every:
            self.agent.save_model()   # a checkpoint: a run killed now loses this much at most
            self.save_best()
            self.saved = time.perf_counter()

    def save_best(self):
        # Saved from the brain itself, its weights swapped for the best ones and back: a copy
        # of the network (clone_model) would draw its initial weights' seeds from Python's
        # random, and the training's own draws would then depend on when this ran.
        if self.best_weights is not None:
            brain, weights = self.agent.brain, self.agent.brain.get_weights()
            brain.set_weights(self.best_weights)
            try:
                save(brain, self.best_file, self.agent.hidden_layers, average=self.best)
            finally:
                brain.set_weights(weights)
            self.best_weights, self.best_saved = None, time.perf_counter()

    def solved(self):
        # CartPole-v1 is solved when 100 episodes in a row average at least 475
        # (env.spec.reward_threshold); --stop-at moves the bar, 0 never stops.
        average, bar = self.history[-1]["avg100"], self.options.stop_at
        if bar and len(self.history) >= 100 and average >= bar:
            print(f"Solved: the last 100 episodes average {average:.1f} >= {bar:g}")
            return True
        return False


def best_file(weights):
    """cartpole_weight.best.h5 beside cartpole_weight.h5."""
    stem, extension = os.path.splitext(weights)
    return f"{stem}.best{extension}"


def best_average(path):
    """The last-100 average a best file was saved with (a number in the file); -inf if none."""
    return float(file_record(path).get("avg100", -np.inf))


class Curve:
    """The learning curve: the scores, their last-100 average, the solved bar (475) and the
    exploration rate. --plot saves it; in a notebook, Live redraws it as it grows. A matplotlib
    Figure made without pyplot, so that no backend is chosen or switched."""

    def __init__(self):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        self.figure = Figure(figsize=(8, 4.5), dpi=72)
        FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_axes((0.08, 0.2, 0.83, 0.75))
        rates = self.axes.twinx()
        # Each score a dot: a line through thousands of scores that jump between 10 and 500
        # takes 40 times as long to draw, and the live curve is redrawn every second.
        self.lines = [*self.axes.plot([], [], "o", color="tab:blue", alpha=0.4, markersize=1.5,
                                      markeredgewidth=0, label="score"),
                      *self.axes.plot([], [], "tab:blue", lw=2, label="last-100 average"),
                      *rates.plot([], [], "tab:green", lw=1, label="exploration rate")]
        self.axes.axhline(475, color="tab:red", linestyle="--", label="solved (475)")
        self.axes.set(xlabel="episode", ylabel="score (steps)", ylim=(0, 510))
        rates.set(ylabel="exploration rate", ylim=(0, 1.02))
        self.figure.legend(loc="lower center", ncol=4, frameon=False)
        self.background = None

    def plot(self, history):
        for line, column in zip(self.lines, ["score", "avg100", "exploration"]):
            line.set_data([row["episode"] for row in history], [row[column] for row in history])
        return len(history)

    def save(self, history, path):
        self.axes.set_xlim(0, self.plot(history))
        self.figure.savefig(path, dpi=100)

    def png(self, history):
        """The curve as a PNG, fast: all but the lines is drawn only when the x-axis grows
        (doubling), and kept as a picture; the lines are drawn over it."""
        import PIL.Image   # matplotlib's own dependency
        canvas, width = self.figure.canvas, self.plot(history)
        if self.background is None or width > self.axes.get_xlim()[1]:
            self.axes.set_xlim(0, max(100, 2 * width))
            for line in self.lines:
                line.set_visible(False)
            canvas.draw()
            self.background = canvas.copy_from_bbox(self.figure.bbox)
            for line in self.lines:
                line.set_visible(True)
        canvas.restore_region(self.background)
        for line in self.lines:
            line.axes.draw_artist(line)
        picture = io.BytesIO()
        PIL.Image.fromarray(np.asarray(canvas.buffer_rgba())).save(picture, "png", compress_level=1)
        return picture.getvalue()


def in_a_notebook():
    """IPython runs in a kernel: Jupyter, JupyterLab, VS Code or Colab. Then run() shows a live
    curve rather than a line per episode."""
    ipython = sys.modules.get("IPython")
    return getattr(ipython and ipython.get_ipython(), "kernel", None) is not None


class Live:
    """In a notebook: a picture of the curve and a status line, updated in place about once a
    second through IPython's display handles."""

    def __init__(self):
        self.curve, self.handles, self.shown = Curve(), None, -np.inf

    def show(self, history, final=False):
        from IPython.display import Image, display
        if not final and time.perf_counter() - self.shown < 1:
            return
        picture = Image(data=self.curve.png(history), format="png")
        status = ("Episode {episode}  score {score}  avg100 {avg100:.1f}  exploration "
                  "{exploration:.3f}  {seconds:.0f} s").format(**history[-1])
        if self.handles is None:
            self.handles = [display(picture, display_id=True),
                            display({"text/plain": status}, raw=True, display_id=True)]
        else:
            self.handles[0].update(picture)
            self.handles[1].update({"text/plain": status}, raw=True)
        self.shown = time.perf_counter()


# -- Watching, playing and recording ------------------------------------------------------------

class Window(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The window (render_mode "human"), for --render or for the tutorial's render line once
    uncommented. Gymnasium draws each reset and step in it itself, at the game's 50 frames a
    second, from make() on; its close button stops the run."""

    def __init__(self, env):
        # Recorded as Gymnasium's own wrappers are, so that env.spec can make it again.
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        self.metadata = {**env.metadata, "render_modes": ["human"]}   # it draws nothing else

    @staticmethod
    def mode(args, training=True):
        """"human" for --render or the render line; "rgb_array" (frames only) for --video."""
        if args.render or (training and Window.line_uncommented()):
            Window.check("--render" if args.render else "self.env.render()")
            return "human"
        return "rgb_array" if args.video else None

    @staticmethod
    def line_uncommented():
        try:
            source = inspect.getsource(CartPole.run)
        except (OSError, TypeError):   # no source to read
            return False
        return re.search(r"^\s*self\.env\.render\(\)", source, re.MULTILINE) is not None

    @staticmethod
    def check(asked_by):
        """Make sure, before anything is trained, that a window can open; then let it open."""
        if sys.platform.startswith("linux") and not any(
                os.environ.get(name) for name in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY")):
            raise UsageError(f"{asked_by} shows the cart in a window, and there is no display "
                             "here: record games instead (--play N --video DIR), or see the "
                             "notebook's video")
        # SDL draws a window through OpenGL by default, and Mesa's OpenGL driver (most Linux
        # desktops, VMs, WSL) then crashes in the LLVM that TensorFlow brings: draw without it.
        os.environ.setdefault("SDL_FRAMEBUFFER_ACCELERATION", "0")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError:
            raise UsageError(f"{asked_by} needs pygame: pip install "
                             "'gymnasium[classic-control]'") from None
        pygame.display.init()
        if pygame.display.get_driver() == "offscreen" != os.environ.get("SDL_VIDEODRIVER"):
            raise UsageError(f"{asked_by} found no display at DISPLAY={os.environ.get('DISPLAY')}")

    @staticmethod
    def wrap(env):
        return Window(env) if env.render_mode == "human" else env

    def render(self):
        # The tutorial's self.env.render(): step() has drawn this state already; drawing it
        # again would show every step twice, at half the speed.
        return None

    def step(self, action):
        import pygame
        result = self.env.step(action)
        if any(event.type == pygame.QUIT for event in pygame.event.get()):
            self.env.close()
            print("The window was closed: stopping.", flush=True)
            raise WindowClosed
        return result


def play(env, agent, episodes, seed=None):
    """Play greedy games (no exploration, no training); returns their scores."""
    agent.exploration_rate = 0.0
    scores = []
    with Stop():
        for index_episode in range(episodes):
            state, _ = env.reset(seed=seed if index_episode == 0 else None)
            done, index = False, 0
            while not done:
                state, _, terminated, truncated, _ = env.step(agent.act(np.reshape(state, [1, -1])))
                done = terminated or truncated
                index += 1
                Stop.check()
            scores.append(index)
            print(f"Play {index_episode}# Score: {index}", flush=True)
    print(f"Mean score over {episodes} games: {np.mean(scores):.1f}")
    return scores


def play_saved(args):
    if not os.path.isfile(args.weights):
        raise UsageError(f"no weight file at {args.weights}: train first, or point --weights "
                         "at one")
    env = Window.wrap(gym.make('CartPole-v1', render_mode=Window.mode(args, False)))
    try:
        if args.video:
            env = record_video(env, args.video)
        agent = AGENTS[args.agent](env.observation_space.shape[0], int(env.action_space.n),
                                   args.weights, **hyperparameters(args))
        play(env, agent, args.play, args.seed)
    finally:
        env.close()   # RecordVideo writes the last video here
    return 0


def record_video(env, folder):
    """Record every game as an MP4 in folder, drawn in memory: no display needed."""
    if sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")   # or SDL looks for a screen
    try:
        return Recorder(env, folder, episode_trigger=lambda episode: True, name_prefix="cartpole")
    except gym.error.DependencyNotInstalled:
        raise UsageError("--video needs moviepy: pip install moviepy") from None
    except OSError as error:
        raise UsageError(f"--video {folder}: {error.strerror}") from None


class Recorder(gym.wrappers.RecordVideo):
    """Gymnasium's RecordVideo, but a video that cannot be written (a full disk) is one line, not
    moviepy's traceback, and leaves no broken file. It records frames, so its mode is rgb_array."""

    def __init__(self, env, *args, **kwargs):
        super().__init__(env, *args, **kwargs)
        self.metadata = {**self.metadata, "render_modes": ["rgb_array"]}

    def stop_recording(self):
        path = os.path.join(self.video_folder, f"{self._video_name}.mp4")
        try:
            super().stop_recording()
        except OSError as error:   # ffmpeg's own message names the cause, in its text only
            self.recorded_frames, self.recording = [], False
            if os.path.exists(path):
                os.remove(path)
            reason = next((os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS,
                                                          errno.EACCES, errno.EIO)
                           if os.strerror(code) in str(error)), "ffmpeg could not write it")
            raise SaveError(f"cannot write the video {path} ({reason})") from None


# -- The command line ---------------------------------------------------------------------------

AGENTS = {"tutorial": Agent, "target": TargetAgent}
# What CartPole, not the agent, holds, where the two sources differ.
RUN_DEFAULTS = {"tutorial": dict(episodes=10000, batch_size=32, train_every="episode"),
                "target": dict(episodes=500, batch_size=64, train_every=1)}
# The recipe (README, "Recipe"): the target agent with the changes that made it solve
# CartPole-v1 on every seed we tried, each measured in benchmarks/ablation.sh.
RECIPE = ("--agent target --hidden 64 64 --tau 0.1 --double --exploration-steps 5000 "
          "--n-step 5 --gamma 0.995 --train-every 8 --batch-size 128 --fit-batch-size 64")
AGENT_FLAGS = ["gamma", "learning_rate", "memory_size", "exploration_decay", "exploration_min",
               "hidden_layers"]
TARGET_ONLY = ["sync_every", "tau", "double", "exploration_steps", "n_step", "fit_batch_size"]


def hyperparameters(args):
    """The agent's attributes that flags set; a flag not given keeps the source's value."""
    return {name: getattr(args, name) for name in AGENT_FLAGS + TARGET_ONLY
            if getattr(args, name) is not None}


def set_hyperparameters(agent, values):
    """Set an agent's hyperparameters by name, before its brain is built."""
    for name, value in values.items():
        if not hasattr(agent, name) and name != "memory_size":
            raise TypeError(f"{type(agent).__name__} has no hyperparameter {name}")
        setattr(agent, name, value)
    agent.memory = deque(maxlen=values.get("memory_size", agent.memory.maxlen))


def bounded(kind, low, high=np.inf):
    """An argparse type: a number of `kind` from low to high."""
    def parse(text):
        if not low <= kind(text) <= high:
            limit = f"at least {low}" if high == np.inf else f"between {low} and {high}"
            raise argparse.ArgumentTypeError(f"{text} is not {limit}")
        return kind(text)
    parse.__name__ = kind.__name__
    return parse


def replay_interval(text):
    """--train-every: 'episode', or a number of steps ('step' is 1)."""
    return {"step": 1, "episode": "episode"}.get(text) or bounded(int, 1)(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Deep Q-Learning on CartPole-v1 (Keras and "
                                     "Gymnasium). With no flags it trains as the tutorial does.")
    add = parser.add_argument
    add("--episodes", type=bounded(int, 1), metavar="N",
        help="episodes to train (default: 10000; 500 for --agent target)")
    add("--seed", type=bounded(int, 0), metavar="S",
        help="seed Python, NumPy, TensorFlow and the game: the same seed, the same run")
    add("--weights", default="cartpole_weight.h5", metavar="PATH",
        help="weight file to resume from and save to, a name ending in .h5 (default: "
             "%(default)s); the best network goes to PATH with .best before .h5")
    add("--fresh", action="store_true", help="ignore an existing weight file; start afresh")
    add("--render", action="store_true", help="show the cart in a window")
    add("--play", type=bounded(int, 1), metavar="N",
        help="play N greedy games with the saved weights, no training")
    add("--stop-at", type=bounded(float, 0, 500), default=475.0, metavar="AVG",
        help="stop once the last 100 episodes average AVG (default: 475, solved; 0: never)")
    add("--checkpoint-every", type=bounded(float, 0.001), default=60.0, metavar="SECONDS",
        help="save the weights every SECONDS of training (default: %(default)g)")
    add("--agent", choices=AGENTS, help="tutorial: the tutorial's DQN (default); target: the "
                                        "second source's DQN with a target network")
    add("--recipe", action="store_true", help="the target agent with the recipe's settings, "
                                              "which other flags still change: " + RECIPE)
    add("--video", metavar="DIR", help="with --play: record each game as an MP4 in DIR")
    add("--log", metavar="CSV", help="write one CSV row per episode")
    add("--plot", metavar="PNG", help="write a learning curve at the end")
    knob = parser.add_argument_group("hyperparameters", "Each defaults to the value in the "
                                     "chosen agent's source.").add_argument
    knob("--gamma", type=bounded(float, 0, 1), metavar="G", help="discount rate")
    knob("--learning-rate", type=bounded(float, 1e-9, 1), metavar="LR", help="Adam's step size")
    knob("--batch-size", type=bounded(int, 1), metavar="N", help="samples per replay")
    knob("--memory-size", type=bounded(int, 1), metavar="N", help="transitions remembered")
    knob("--exploration-decay", type=bounded(float, 0, 1), metavar="D", help="factor per decay")
    knob("--exploration-min", type=bounded(float, 0, 1), metavar="E",
         help="floor of the exploration rate")
    knob("--train-every", type=replay_interval, metavar="{step,episode,N}",
         help="replay after every step, N steps or episode (default: episode; target: step)")
    knob("--hidden", dest="hidden_layers", type=bounded(int, 1), nargs="+", metavar="N",
         help="hidden layer sizes (default: 24 24, or those the weight file records)")
    knob = parser.add_argument_group("target agent only").add_argument
    knob("--sync-every", type=bounded(int, 1), metavar="N",
         help="copy the brain to the target network every N episodes (default 10)")
    knob("--tau", type=bounded(float, 1e-6, 1), metavar="T", help="below 1: instead, move the "
         "target network this share of the way after every replay")
    knob("--double", action="store_true", default=None, help="Double DQN targets")
    knob("--n-step", type=bounded(int, 1), metavar="N", help="learn from N-step returns")
    knob("--exploration-steps", type=bounded(int, 1), metavar="N",
         help="decay exploration in a straight line to its floor over N steps")
    knob("--fit-batch-size", type=bounded(int, 1), metavar="N",
         help="samples per gradient step of a replay (default 32, the source's fit)")
    argv = sys.argv[1:] if argv is None else [str(word) for word in argv]
    args = parser.parse_args(argv)
    if args.recipe and args.agent == "tutorial":
        parser.error("--recipe is for the target agent: drop --agent tutorial")
    if args.recipe:   # its flags first, so that the user's own, after them, win
        args = parser.parse_args(RECIPE.split() + argv)
    args.agent = args.agent or "tutorial"
    for name in TARGET_ONLY:
        if getattr(args, name) is not None and args.agent != "target":
            parser.error(f"--{name.replace('_', '-')} needs --agent target")
    if args.video and not args.play:
        parser.error("--video records --play games: add --play N")
    if args.video and args.render:
        parser.error("--video and --render draw in different ways: choose one")
    for name, value in RUN_DEFAULTS[args.agent].items():
        setattr(args, name, value if getattr(args, name) is None else getattr(args, name))
    return args


# -- Safety: how a run ends, signals, paths, weight files --------------------------------------

class UsageError(Exception):
    """A problem with the command line, the machine or the weight file, found before training."""


class SaveError(Exception):
    """A file of the run (the weights, --log, --plot) could not be written."""


class WindowClosed(Exception):
    """The window's close button was pressed."""


class Terminated(BaseException):
    """`kill` (SIGTERM). A BaseException, as KeyboardInterrupt is, so that no `except
    Exception` on the way up swallows it."""


class HangUp(BaseException):
    """The terminal closed, or an SSH session dropped (SIGHUP), as Terminated is."""


# Each way a run can end early, and its exit status (docs/when-things-go-wrong.md). A broken
# pipe: whatever read the output has gone (`| head`), as SIGPIPE ends shell tools. Out of
# memory: a network too large to build (--hidden 100000 100000), found before training.
ENDINGS = {UsageError: 2, MemoryError: 2, tf.errors.ResourceExhaustedError: 2, SaveError: 74,
           WindowClosed: 0, KeyboardInterrupt: 130, HangUp: 129, Terminated: 143,
           BrokenPipeError: 141}


def end(ending):
    """The exit status for an ending; an error's one line goes to stderr first."""
    if isinstance(ending, BrokenPipeError):   # nobody to tell, and nothing left to flush there
        silence(sys.stdout)
    elif not isinstance(ending, tuple(ENDINGS)):   # an OSError: main() catches them all
        # A print into a terminal that has just closed fails (EIO) before SIGHUP's handler
        # has run: the same hang-up. Any other is a bug to show whole.
        if ending.errno != errno.EIO:
            raise ending
        silence(sys.stdout, sys.stderr)
        return ENDINGS[HangUp]
    elif isinstance(ending, (MemoryError, tf.errors.ResourceExhaustedError)):
        shape = re.search(r"shape ?(\[[\d, ]+\])", str(ending))   # TensorFlow's text says it
        print("error: the network does not fit in this machine's memory"
              + (f" (a tensor of shape {shape.group(1)})" if shape else "")
              + ": ask for smaller hidden layers (--hidden)", file=sys.stderr)
    elif isinstance(ending, Exception) and str(ending):
        print(f"error: {ending}", file=sys.stderr)
    return next(status for kind, status in ENDINGS.items() if isinstance(ending, kind))


def silence(*streams):
    """Send what is still written to these streams nowhere: their reader has gone."""
    for stream in streams:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())
        except (OSError, ValueError):   # no file behind it (a notebook's stream)
            pass


class Stop:
    """Ctrl-C (SIGINT), `kill` (SIGTERM) and a closed terminal (SIGHUP), acted on between two
    steps.

    A handler runs wherever Python is when the signal lands, often inside TensorFlow or h5py,
    which turn an exception raised there into another. So the handler only notes the signal,
    and check(), called between steps, raises it from our own code; the tutorial's `finally`
    then saves. A signal noted during the save is raised when the block ends. `with Stop():`
    takes the signals for the block and gives them back after it, so that a notebook's stop
    button acts as Ctrl-C; it also takes Ctrl-C back from a shell that ignored it for `&`, but
    leaves SIGHUP ignored where `nohup` asked for that.
    """
    HANG_UP = getattr(signal, "SIGHUP", None)   # not on Windows
    EXCEPTIONS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated,
                  **({HANG_UP: HangUp} if HANG_UP else {})}
    noted = None     # the first signal that landed and has not been raised yet

    @classmethod
    def note(cls, signum, frame):
        cls.noted = cls.noted or signum
        if signum == cls.HANG_UP:   # no terminal left: a line printed there would fail (EIO)
            silence(sys.stdout, sys.stderr)

    @classmethod
    def check(cls):
        signum, cls.noted = cls.noted, None
        if signum:
            raise cls.EXCEPTIONS[signum]()

    def __enter__(self):
        self.previous = {}
        if threading.current_thread() is threading.main_thread():   # only it may take signals
            nohup = self.HANG_UP and signal.getsignal(self.HANG_UP) == signal.SIG_IGN
            self.previous = {signum: signal.signal(signum, Stop.note) for signum in self.EXCEPTIONS
                             if not (nohup and signum == self.HANG_UP)}
        if Stop.noted:   # it landed while the model was built, say: before any training
            print("Stopped before it started: nothing was trained or written", flush=True)
            Stop.check()
        return self

    def __exit__(self, kind, error, traceback):
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        if kind is None:
            Stop.check()
        elif signal.getsignal(signal.SIGINT) != Stop.note:
            Stop.noted = None   # stopping already: not to be carried into the next block
        return False


def check_paths(args):
    """Refuse now, not after hours of training, a path the run could not use; one line each."""
    check_file("--weights", args.weights, "cartpole_weight.h5", write=not args.play)
    name = os.path.basename(args.weights)
    if not name.endswith((".h5", ".hdf5")) or name.endswith(".weights.h5"):
        stem = name.split(".")[0] or "weights"
        raise UsageError(f"--weights {args.weights}: the weight file is HDF5, which Keras reads "
                         f"back only from a name ending in .h5, such as {stem}.h5")
    if args.log:
        check_file("--log", args.log, "log.csv")
    if args.plot:
        from matplotlib.figure import Figure
        check_file("--plot", args.plot, "curve.png")
        extension = os.path.splitext(args.plot)[1][1:].lower()
        if extension not in Figure().canvas.get_supported_filetypes():
            raise UsageError(f"--plot {args.plot}: end the name in .png, .svg or .pdf")
    named = [os.path.realpath(path) for path in (args.weights, args.log, args.plot) if path]
    if len(set(named)) < len(named):
        raise UsageError("--weights, --log and --plot must name three different files")
    if args.video and os.path.splitext(args.video)[1].lower() in (".mp4", ".gif", ".avi"):
        raise UsageError(f"--video {args.video}: --video takes a folder and writes an MP4 per "
                         "game in it; name a folder, such as videos")


def check_file(flag, path, example, write=True):
    """A file where a file is meant, in a folder that exists and can be written."""
    if os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"{flag} {path} is not a file: name a file, such as "
                         f"{os.path.join(path, example)}")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        if write:
            tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise UsageError(f"{flag} {path}: cannot write in {folder}: {error.strerror}") from None


def read_network(agent, hyperparameters):
    """Take the hidden layers that a weight file of this script records, so that every file
    plays and resumes with no flag but --weights; a --hidden that asks for others stops in one
    line. The file records the sizes that went into _build_model's loop, not the shapes of its
    numbers, so a layer a learner added after the loop is built by the learner's own line.
    A file with no record (the tutorial's own, or an older one) keeps the sizes as they are."""
    if agent.fresh or not os.path.isfile(agent.weight_backup):
        return
    recorded = file_record(agent.weight_backup).get("hidden_layers")
    if recorded is None:
        return
    recorded, asked = tuple(int(units) for units in recorded), hyperparameters.get("hidden_layers")
    if asked is not None and tuple(asked) != recorded:
        sizes = " ".join(map(str, recorded))
        raise UsageError(f"{agent.weight_backup} holds a network with hidden layers {sizes}, and "
                         f"this run asks for {' '.join(map(str, asked))}: leave it as it is and "
                         "train another file (--weights PATH), train this one afresh (--fresh), "
                         f"or ask for its layers (--hidden {sizes})")
    agent.hidden_layers = recorded


def file_record(path):
    """What this script records in a weight file, as HDF5 attributes (numbers only): the hidden
    layers' sizes and, in a best file, its last-100 average. {} where there is none."""
    import h5py   # Keras's own dependency
    try:
        with h5py.File(path, "r") as f:
            return {name: f.attrs[name] for name in ("hidden_layers", "avg100") if name in f.attrs}
    except (OSError, ValueError):   # no file, or not HDF5: load_weights says which
        return {}


def load_weights(model, path):
    """model.load_weights(path), or one line that says what is wrong with the file. It reads
    numbers only, never builds a model from the file, so a weight file cannot run code."""
    try:
        model.load_weights(path)
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(f"cannot load {path}: {what_is_wrong(model, path, error)}. It was left "
                         "as it is; --fresh trains a new network over it, --weights PATH takes "
                         "another file") from None


def what_is_wrong(model, path, error):
    """Why a weight file does not load into model, in a few words."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            weights = f.get("model_weights", f)
            theirs = [weights[layer][name].shape for layer in weights.attrs["layer_names"]
                      for name in weights[layer].attrs["weight_names"]]
            recorded = "hidden_layers" in f.attrs
    except OSError as failure:   # h5py's messages run to several lines
        return "it is cut short (truncated)" if "truncated" in str(failure) else (
            "it is not an HDF5 file")
    except (KeyError, ValueError):
        return "it holds no Keras weights"
    theirs, ours = layers(theirs), layers([weight.shape for weight in model.weights])
    if (theirs[0], theirs[-1]) != (ours[0], ours[-1]):
        return (f"its network takes {theirs[0]} numbers and gives {theirs[-1]}, where CartPole's "
                f"takes {ours[0]} and gives {ours[-1]}")
    hidden = " ".join(map(str, theirs[1:-1]))
    if recorded:
        return (f"its hidden layers are {hidden}, and _build_model now builds "
                f"{' '.join(map(str, ours[1:-1]))}")
    if theirs != ours:
        return (f"its hidden layers are {hidden}; it does not record them, as files of this "
                f"script do, so give the ones it was trained with (--hidden {hidden})")
    return str(error).split(".")[0].strip() or type(error).__name__


def layers(shapes):
    """A network's sizes from its weights' shapes: its input, then each layer's units."""
    kernels = [shape for shape in shapes if len(shape) == 2]
    return [kernels[0][0], *(kernel[1] for kernel in kernels)] if kernels else [0]


def save(model, path, hidden_layers, average=None):
    """model.save(path), all or nothing, recording the hidden layers' sizes in the file (see
    read_network); a best network keeps its average there too.

    Where path cannot be written (a full disk, a folder removed or made read-only), the
    weights go to the temporary folder, path is left as it was, and SaveError says where they
    are: no training is lost.
    """
    try:
        save_atomically(model, path, hidden_layers, average)
    except OSError as error:
        stem, extension = os.path.splitext(os.path.basename(path))
        fallback = os.path.join(tempfile.gettempdir(), f"{stem}-{os.getpid()}{extension}")
        try:
            save_atomically(model, fallback, hidden_layers, average)
        except OSError as second:
            raise SaveError(f"cannot write {path} ({cause(error)}) nor {fallback} "
                            f"({cause(second)}): these weights are lost; {path} was left "
                            "as it was") from None
        raise SaveError(f"cannot write {path} ({cause(error)}); the weights are in {fallback}: "
                        f"copy it back when you can ({path} was left as it was)") from None


def cause(error):
    """An OSError's cause in a few words: h5py's own messages run to several lines."""
    return os.strerror(error.errno) if error.errno else str(error).split("(")[0].strip()


def save_atomically(model, path, hidden_layers, average=None):
    """Write the weights beside path, flush them to disk, then rename the new file over path:
    a run killed at any moment leaves the old file or the new one, never half of one. The file
    keeps its mode, and through a symbolic link the file it points to is the one updated."""
    import h5py
    import logging
    import shutil
    path = os.path.realpath(path)
    name = f".{os.path.basename(path)}.{os.getpid()}.h5"
    temporary = os.path.join(os.path.dirname(path), name)
    # HDF5 writes the file in memory (Linux's /dev/shm), and Python copies it to the disk: on
    # a disk that fills up half-way through, HDF5 crashes the whole process (measured: a
    # segmentation fault), where Python's own write fails with one clear error.
    memory = os.path.join("/dev/shm", name) if os.access("/dev/shm", os.W_OK) else temporary
    keras_log, level = logging.getLogger("absl"), logging.getLogger("absl").level
    try:
        # Keras warns that a whole model in .h5 is a legacy format; the file keeps the
        # tutorial's name on purpose, and only its weights are read back.
        keras_log.setLevel(logging.ERROR)
        model.save(memory, include_optimizer=average is None)
        with h5py.File(memory, "a") as f:
            f.attrs["hidden_layers"] = np.asarray(hidden_layers, np.int64)
            if average is not None:
                f.attrs["avg100"] = average
        if memory != temporary:
            shutil.copyfile(memory, temporary)
        if os.path.exists(path):
            os.chmod(temporary, os.stat(path).st_mode & 0o7777)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    finally:
        keras_log.setLevel(level)
        for leftover in {memory, temporary}:
            if os.path.exists(leftover):
                os.remove(leftover)


def keep_to_one_cpu():
    """The command line's run on the CPU it is on, TensorFlow's threads with it, and one thread
    for a graph's ops and one for an op's own work. TensorFlow runs each graph on a thread of
    its own while the caller waits: on another CPU, waking it costs more than a small network's
    maths, thousands of times a run (docs/speed.md). The same sums, so the same run. Called
    before TensorFlow starts its threads; a notebook's kernel is not the script's to pin."""
    if not hasattr(os, "sched_setaffinity"):   # Linux only; elsewhere the system's default
        return
    try:
        if len(os.sched_getaffinity(0)) > 1:
            with open("/proc/self/stat") as stat:   # field 39: the CPU it last ran on
                os.sched_setaffinity(0, {int(stat.read().rsplit(")", 1)[1].split()[36])})
        tf.config.threading.set_inter_op_parallelism_threads(1)
        tf.config.threading.set_intra_op_parallelism_threads(1)
    except (OSError, ValueError, IndexError, RuntimeError):   # no /proc; TensorFlow started
        pass


if __name__ == "__main__":
    keep_to_one_cpu()
    sys.exit(main())
