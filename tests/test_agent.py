"""The tutorial agent's maths, checked against the tutorial's own Keras calls."""
import random

import gymnasium as gym
import keras
import numpy as np
import pytest

from cartpole_dqn import Agent, CartPole, parse_args


@pytest.fixture
def agent(tmp_path):
    keras.utils.set_random_seed(3)
    return Agent(4, 2, str(tmp_path / "w.h5"))


def copy_of(model):
    """The tutorial's network, compiled as the tutorial compiles it, with model's weights."""
    ref = keras.Sequential([keras.Input((4,)), keras.layers.Dense(24, activation="relu"),
                            keras.layers.Dense(24, activation="relu"),
                            keras.layers.Dense(2, activation="linear")])
    ref.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=0.001))
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


def test_replay_matches_the_tutorials_predict_and_fit(agent):
    rng = np.random.default_rng(0)
    # A terminated step (no future), a truncated step (stored with done=False,
    # so the future still counts) and an ordinary one; twice, to take several
    # steps in a row, each from the weights the previous one left.
    for _ in range(2):
        agent.remember(*transition(rng, True))
        agent.remember(*transition(rng, False))
        agent.remember(*transition(rng, False))
    reference = copy_of(agent.brain)
    before = agent.brain.get_weights()

    random.seed(7)
    agent.replay(6)
    random.seed(7)
    tutorial_replay(reference, random.sample(agent.memory, 6), agent.gamma)

    after = agent.brain.get_weights()
    assert any(not np.allclose(b, a) for b, a in zip(before, after)), "replay learned nothing"
    for ours, theirs in zip(after, reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_replay_waits_for_a_full_sample(agent):
    agent.remember(*transition(np.random.default_rng(0), False))
    before = agent.brain.get_weights()
    agent.replay(32)
    assert all(np.array_equal(b, a) for b, a in zip(before, agent.brain.get_weights()))
    assert agent.exploration_rate == 1.0


def test_predict_is_the_brains_forward_pass(agent):
    states = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_allclose(agent.predict(states), agent.brain.predict(states, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_exploration_rate_one_acts_at_random(agent, monkeypatch):
    monkeypatch.setattr(agent, "predict", lambda state: pytest.fail("consulted the network"))
    actions = [agent.act(np.zeros((1, 4), np.float32)) for _ in range(400)]
    assert 150 < sum(actions) < 250


def test_exploration_rate_zero_is_greedy(agent):
    agent.exploration_rate = 0.0
    states = np.random.default_rng(2).normal(size=(100, 1, 4)).astype(np.float32)
    greedy = [int(np.argmax(agent.brain.predict(s, verbose=0)[0])) for s in states]
    assert [agent.act(s) for s in states] == greedy
    assert len(set(greedy)) == 2, "pick states on both sides of the decision"


def test_exploration_decays_once_per_replay_down_to_its_floor(agent):
    rng = np.random.default_rng(3)
    for _ in range(32):
        agent.remember(*transition(rng, False))
    agent.replay(32)
    assert agent.exploration_rate == pytest.approx(0.995)
    rates = []
    for _ in range(1000):
        agent.replay(32)
        rates.append(agent.exploration_rate)
    assert min(rates) == agent.exploration_min == 0.01
    assert rates[-1] == 0.01


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
