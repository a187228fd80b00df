"""The tutorial agent's maths, checked against the tutorial's own Keras calls."""
import os
import random

import gymnasium as gym
import keras
import numpy as np
import pytest
from keras.layers import Dense
from keras.models import Sequential

from cartpole_dqn import Agent, CartPole, load_weights, parse_args


@pytest.fixture
def agent(tmp_path):
    keras.utils.set_random_seed(3)
    return Agent(4, 2, str(tmp_path / "w.h5"))


def copy_of(model):
    """A Keras model compiled as the tutorial compiles it, with model's layers and weights."""
    ref = keras.models.clone_model(model)
    ref.compile(loss=model.loss, optimizer=keras.optimizers.Adam(learning_rate=0.001))
    ref.set_weights(model.get_weights())
    return ref


def tutorial_replay(model, sample_batch, gamma):
    """The tutorial's replay loop, verbatim but for verbose=0."""
    for state, action, reward, next_state, done in sample_batch:
        target = reward
        if not done:
            target = reward + gamma * np.amax(model.predict(next_state, verbose=0)[0])
        target_f = model.predict(state, verbose=0)
        target_f[0][action] = target
        model.fit(state, target_f, epochs=1, verbose=0)


def transition(rng, done):
    state = rng.normal(size=(1, 4)).astype(np.float32)
    next_state = rng.normal(size=(1, 4)).astype(np.float32)
    return state, int(rng.integers(2)), 1.0, next_state, done


def remember_some(agent, count=6, seed=0):
    # Terminated steps (no future), truncated ones (stored with done=False, so
    # the future still counts) and ordinary ones.
    rng = np.random.default_rng(seed)
    for i in range(count):
        agent.remember(*transition(rng, done=(i % 3 == 0)))


def replay_both(agent, reference, size, seed):
    """agent.replay(size) and the tutorial's replay on `reference`, on the same sample."""
    random.seed(seed)
    agent.replay(size)
    random.seed(seed)
    tutorial_replay(reference, random.sample(agent.memory, size), agent.gamma)


def assert_same_weights(a, b, atol=1e-6):
    for ours, theirs in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=atol)


def test_replay_matches_the_tutorials_predict_and_fit_and_follows_gamma(agent):
    remember_some(agent)
    reference = copy_of(agent.brain)
    before = agent.brain.get_weights()
    # Six steps in a row, each from the weights the previous one left, twice.
    replay_both(agent, reference, 6, seed=7)
    replay_both(agent, reference, 6, seed=8)
    after = agent.brain.get_weights()
    assert any(not np.allclose(b, a) for b, a in zip(before, after)), "replay learned nothing"
    assert_same_weights(agent.brain, reference)
    # A change of gamma takes effect in the next replay (the reference replays with it too).
    agent.gamma = 0.5
    replay_both(agent, reference, 6, seed=2)
    assert_same_weights(agent.brain, reference)


def test_replay_waits_for_a_full_sample(agent):
    agent.remember(*transition(np.random.default_rng(0), False))
    before = agent.brain.get_weights()
    agent.replay(32)
    assert all(np.array_equal(b, a) for b, a in zip(before, agent.brain.get_weights()))
    assert agent.exploration_rate == 1.0


def test_exploration_rate_one_acts_at_random(agent, monkeypatch):
    monkeypatch.setattr(agent, "predict", lambda state: pytest.fail("consulted the network"))
    actions = [agent.act(np.zeros((1, 4), np.float32)) for _ in range(400)]
    assert 150 < sum(actions) < 250


def test_exploration_rate_zero_is_greedy(agent):
    agent.exploration_rate = 0.0
    states = np.random.default_rng(2).normal(size=(100, 1, 4)).astype(np.float32)
    greedy = np.argmax(agent.brain.predict(states[:, 0], verbose=0), axis=1)
    assert [agent.act(s) for s in states] == list(greedy)
    assert len(set(greedy)) == 2, "pick states on both sides of the decision"


def test_exploration_decays_once_per_replay_as_the_tutorial_writes_it(agent):
    remember_some(agent, 32)
    agent.exploration_decay = 0.5
    rates = []
    for _ in range(9):
        agent.replay(32)
        rates.append(agent.exploration_rate)
    # The tutorial's rule, `if rate > min: rate *= decay`: it stops at the
    # first value at or below the minimum (0.0078125 here, 0.00999 with 0.995).
    assert rates == [0.5 ** n for n in range(1, 8)] + [0.5 ** 7] * 2


def test_saved_weights_load_back_with_minimal_exploration(agent, tmp_path):
    agent.save_model()
    loaded = Agent(4, 2, agent.weight_backup)
    assert loaded.exploration_rate == loaded.exploration_min
    for a, b in zip(agent.brain.get_weights(), loaded.brain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert Agent(4, 2, agent.weight_backup, fresh=True).exploration_rate == 1.0


def test_time_limit_ends_the_episode_but_is_stored_as_not_done(tmp_path):
    cartpole = CartPole(parse_args(["--episodes", "1", "--weights", str(tmp_path / "w.h5")]))
    # Three steps cannot drop the pole, so only the time limit ends this episode.
    cartpole.env = gym.wrappers.TimeLimit(gym.make("CartPole-v1").unwrapped, 3)
    cartpole.agent.exploration_rate = 0.0
    cartpole.run()
    assert len(cartpole.agent.memory) == 3
    assert [done for *_, done in cartpole.agent.memory] == [False, False, False]


def test_weights_are_saved_by_finally_when_training_is_interrupted(tmp_path, monkeypatch):
    cartpole = CartPole(parse_args(["--episodes", "100", "--weights", str(tmp_path / "w.h5")]))
    steps = []

    def interrupt(state):
        steps.append(state)
        if len(steps) == 40:
            raise KeyboardInterrupt
        return 0
    monkeypatch.setattr(cartpole.agent, "act", interrupt)
    with pytest.raises(KeyboardInterrupt):
        cartpole.run()
    loaded = Agent(4, 2, str(tmp_path / "w.h5"))
    for a, b in zip(cartpole.agent.brain.get_weights(), loaded.brain.get_weights()):
        np.testing.assert_array_equal(a, b)


# A learner's first experiment is _build_model. act() and replay() must follow
# whatever they build.
def network(layers, loss="mse"):
    def _build_model(self):
        model = keras.Sequential([keras.Input(shape=(self.state_size,)), *layers()])
        model.compile(loss=loss, optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate))
        return model
    return type("EditedAgent", (Agent,), {"_build_model": _build_model})


EDITS = {
    "tanh": network(lambda: [keras.layers.Dense(24, activation="tanh"),
                             keras.layers.Dense(24, activation="tanh"), keras.layers.Dense(2)]),
    "three layers, other widths": network(lambda: [
        keras.layers.Dense(64, activation="relu"), keras.layers.Dense(32, activation="sigmoid"),
        keras.layers.Dense(8, activation="relu", use_bias=False), keras.layers.Dense(2)]),
    # Layers NumPy does not run here: Keras predicts these, more slowly.
    "swish and an Activation layer": network(lambda: [
        keras.layers.Dense(16, activation="swish"), keras.layers.Dense(16),
        keras.layers.Activation("softplus"), keras.layers.Dense(2)]),
    "dropout": network(lambda: [keras.layers.Dense(24, activation="relu"),
                                keras.layers.Dropout(0.3), keras.layers.Dense(2)]),
    "huber loss, batch normalization": network(lambda: [
        keras.layers.Dense(24, activation="relu"), keras.layers.BatchNormalization(),
        keras.layers.Dense(2)], loss="huber"),
}
STATES = np.random.default_rng(4).normal(size=(40, 4)).astype(np.float32)


def assert_predict_follows_the_brain(agent):
    ours = np.concatenate([agent.predict(s[None]) for s in STATES])
    np.testing.assert_allclose(ours, agent.brain.predict(STATES, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("edit", EDITS)
def test_predict_follows_an_edited_network_through_fit_load_and_set_weights(tmp_path, edit):
    keras.utils.set_random_seed(0)
    agent = EDITS[edit](4, 2, str(tmp_path / "w.h5"))
    assert_predict_follows_the_brain(agent)
    agent.brain.fit(STATES[:8], np.ones((8, 2), np.float32), epochs=1, verbose=0)
    assert_predict_follows_the_brain(agent)
    agent.brain.set_weights([w * 1.5 for w in agent.brain.get_weights()])
    assert_predict_follows_the_brain(agent)
    agent.save_model()
    agent.brain.set_weights([np.zeros_like(w) for w in agent.brain.get_weights()])
    assert_predict_follows_the_brain(agent)
    agent.brain.load_weights(agent.weight_backup)
    assert_predict_follows_the_brain(agent)
    agent.brain.layers[0].kernel.assign(np.ones((4, agent.brain.layers[0].units), np.float32))
    assert_predict_follows_the_brain(agent)
    if edit != "tanh":
        return   # one edited network is enough to show that replay follows it
    # And replay() still takes the tutorial's steps on this network.
    remember_some(agent)
    reference = copy_of(agent.brain)
    reference.compile(loss=agent.brain.loss,
                      optimizer=keras.optimizers.Adam(learning_rate=0.001))
    agent.brain.compile(loss=agent.brain.loss,
                        optimizer=keras.optimizers.Adam(learning_rate=0.001))
    replay_both(agent, reference, 6, seed=5)
    # NumPy's tanh, exp and the like round a little differently from TensorFlow's, and
    # Adam's first steps (about +-learning_rate each) can turn on such a difference: the
    # same maths, to 1e-3 after six steps.
    assert_same_weights(agent.brain, reference, atol=1e-3)
    assert_predict_follows_the_brain(agent)


def test_a_learners_extra_layer_trains_saves_and_resumes(tmp_path):
    # The tutorial's first experiment: one more layer in _build_model, after the loop.
    class ExtraLayer(Agent):
        def _build_model(self):
            model = Sequential([keras.Input(shape=(self.state_size,))])
            for units in self.hidden_layers:
                model.add(Dense(units, activation="relu"))
            model.add(Dense(12, activation="tanh"))
            model.add(Dense(self.action_size, activation="linear"))
            model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=0.001))
            if os.path.isfile(self.weight_backup) and not self.fresh:
                load_weights(model, self.weight_backup)
                self.exploration_rate = self.exploration_min
            return model
    trained = ExtraLayer(4, 2, str(tmp_path / "w.h5"))
    remember_some(trained, 32)
    trained.replay(32)
    trained.save_model()
    resumed = ExtraLayer(4, 2, str(tmp_path / "w.h5"))
    assert resumed.exploration_rate == resumed.exploration_min
    for a, b in zip(trained.brain.get_weights(), resumed.brain.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert_predict_follows_the_brain(resumed)


def test_the_tutorials_network_runs_in_numpy_and_others_in_keras(tmp_path):
    from cartpole_dqn import fast
    assert fast(Agent(4, 2, str(tmp_path / "w.h5"))).layers is not None
    assert fast(EDITS["tanh"](4, 2, str(tmp_path / "w.h5"))).layers is not None
    assert fast(EDITS["dropout"](4, 2, str(tmp_path / "w.h5"))).layers is None


def test_predict_follows_a_replay_written_as_the_tutorial_wrote_it(tmp_path):
    # A learner who puts the tutorial's replay back (brain.predict, brain.fit).
    class TutorialReplay(Agent):
        def replay(self, sample_batch_size):
            tutorial_replay(self.brain, random.sample(self.memory, sample_batch_size), self.gamma)
    agent = TutorialReplay(4, 2, str(tmp_path / "w.h5"))
    agent.exploration_rate = 0.0
    assert_predict_follows_the_brain(agent)
    remember_some(agent)
    agent.replay(6)
    assert_predict_follows_the_brain(agent)


def test_predict_follows_a_brain_that_is_replaced(tmp_path):
    agent = Agent(4, 2, str(tmp_path / "w.h5"))
    assert_predict_follows_the_brain(agent)
    agent.brain = EDITS["tanh"](4, 2, str(tmp_path / "w.h5")).brain
    assert_predict_follows_the_brain(agent)


def test_a_network_that_is_not_a_chain_is_predicted_by_keras(tmp_path):
    class SkipConnection(Agent):
        def _build_model(self):
            inputs = keras.Input(shape=(self.state_size,))
            hidden = keras.layers.Dense(4, activation="relu")(inputs)
            outputs = keras.layers.Dense(2)(keras.layers.Add()([inputs, hidden]))
            model = keras.Model(inputs, outputs)
            model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=0.001))
            return model
    agent = SkipConnection(4, 2, str(tmp_path / "w.h5"))
    assert_predict_follows_the_brain(agent)
    remember_some(agent)
    agent.replay(6)
    assert_predict_follows_the_brain(agent)
