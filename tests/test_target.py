"""The second source's target-network agent (issue 3)."""
import random

import keras
import numpy as np
import pytest

from cartpole_dqn import TargetAgent
from test_agent import copy_of, transition


@pytest.fixture
def agent(tmp_path):
    keras.utils.set_random_seed(5)
    agent = TargetAgent(4, 2, str(tmp_path / "w.h5"))
    rng = np.random.default_rng(0)
    for i in range(64):
        # Terminated, truncated (stored as not done) and ordinary transitions.
        agent.remember(*transition(rng, done=(i % 3 == 0)))
    return agent


def weights(model):
    return [w.copy() for w in model.get_weights()]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_sources_values():
    agent = TargetAgent(4, 2, "none.h5")
    assert (agent.gamma, agent.memory.maxlen, agent.sync_every) == (0.99, 50000, 10)
    assert (agent.learning_rate, agent.exploration_decay, agent.exploration_min) == (
        0.001, 0.995, 0.01)


def test_target_network_stays_still_between_syncs(agent):
    target = weights(agent.target_brain)
    assert same(target, agent.brain.get_weights()), "starts as a copy"
    main = weights(agent.brain)
    for episode in range(1, 10):
        agent.replay(64)
        agent.end_episode(episode)
    assert not same(main, agent.brain.get_weights()), "the main network learned"
    assert same(target, agent.target_brain.get_weights())
    agent.end_episode(10)
    assert same(agent.brain.get_weights(), agent.target_brain.get_weights())
    assert agent.exploration_rate == pytest.approx(0.995 ** 10)


def source_train(main, target, batch, gamma):
    """The second source's DQNAgent.train() after sampling, with fit's shuffle off."""
    states, actions, rewards, next_states, dones = zip(*batch)
    states = np.array(states).squeeze(axis=1)
    next_states = np.array(next_states).squeeze(axis=1)
    target_qs = main.predict(states, verbose=0)
    next_qs = target.predict(next_states, verbose=0)
    for i in range(len(batch)):
        if dones[i]:
            target_qs[i][actions[i]] = rewards[i]
        else:
            target_qs[i][actions[i]] = rewards[i] + gamma * np.max(next_qs[i])
    main.fit(states, target_qs, epochs=1, verbose=0, batch_size=32, shuffle=False)


def test_batched_replay_matches_the_sources_predict_and_fit(agent):
    # Move the target network away from the main one, so that the test can
    # tell which network each part of the target comes from.
    rng = np.random.default_rng(1)
    agent.target_brain.set_weights(
        [w + rng.normal(scale=0.1, size=w.shape).astype(np.float32)
         for w in agent.target_brain.get_weights()])
    main, target = copy_of(agent.brain), copy_of(agent.target_brain)
    before = weights(agent.brain)

    random.seed(11)
    agent.replay(64)
    random.seed(11)
    source_train(main, target, random.sample(agent.memory, 64), agent.gamma)

    assert not same(before, agent.brain.get_weights())
    for ours, theirs in zip(agent.brain.get_weights(), main.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(agent.predict(np.ones((1, 4), np.float32)),
                               main.predict(np.ones((1, 4), np.float32), verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_replay_leaves_exploration_to_the_end_of_the_episode(agent):
    agent.replay(64)
    assert agent.exploration_rate == 1.0
