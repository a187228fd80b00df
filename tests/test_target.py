"""The second source's target-network agent (issue 3)."""
import random

import keras
import numpy as np
import pytest

from cartpole_dqn import ReplayBuffer, TargetAgent
from test_agent import copy_of, remember_some


@pytest.fixture
def agent(tmp_path):
    keras.utils.set_random_seed(5)
    agent = TargetAgent(4, 2, str(tmp_path / "w.h5"))
    remember_some(agent, 64)
    return agent


def weights(model):
    return [w.copy() for w in model.get_weights()]


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def test_the_sources_values():
    agent = TargetAgent(4, 2, "none.h5")
    assert (agent.gamma, agent.memory.max_size, agent.sync_every) == (0.99, 50000, 10)
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


def source_train(main, target, batch, gamma, double=False):
    """The second source's DQNAgent.train() after sampling, with fit's shuffle off
    (and, with double, Double DQN's choice of the next action by `main`)."""
    states, actions, rewards, next_states, dones = batch
    target_qs = main.predict(states, verbose=0)
    next_qs = target.predict(next_states, verbose=0)
    best = np.argmax(main.predict(next_states, verbose=0), axis=1)
    for i in range(len(states)):
        if dones[i]:
            target_qs[i][actions[i]] = rewards[i]
        elif double:
            target_qs[i][actions[i]] = rewards[i] + gamma * next_qs[i][best[i]]
        else:
            target_qs[i][actions[i]] = rewards[i] + gamma * np.max(next_qs[i])
    main.fit(states, target_qs, epochs=1, verbose=0, batch_size=32, shuffle=False)


def replay_both(agent, main, target, seed):
    random.seed(seed)
    agent.replay(64)
    random.seed(seed)
    states, next_states, actions, rewards, dones, _ = agent.memory.columns(agent.memory.sample(64))
    source_train(main, target, (states, actions.astype(int), rewards, next_states, dones),
                 agent.gamma, agent.double)


def assert_same(agent, main):
    for ours, theirs in zip(agent.brain.get_weights(), main.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def references(agent):
    """Copies of both networks, with the target network first moved away from
    the main one, so that a test can tell which network a target came from."""
    rng = np.random.default_rng(1)
    agent.target_brain.set_weights(
        [w + rng.normal(scale=0.1, size=w.shape).astype(np.float32)
         for w in agent.target_brain.get_weights()])
    return copy_of(agent.brain), copy_of(agent.target_brain)


def test_batched_replay_matches_the_sources_predict_and_fit(agent):
    main, target = references(agent)
    before = weights(agent.brain)
    replay_both(agent, main, target, seed=11)
    assert not same(before, agent.brain.get_weights())
    assert_same(agent, main)
    np.testing.assert_allclose(agent.predict(np.ones((1, 4), np.float32)),
                               main.predict(np.ones((1, 4), np.float32), verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_gamma_and_double_changed_between_replays_take_effect(agent):
    main, target = references(agent)
    replay_both(agent, main, target, seed=1)
    agent.gamma = 0.5
    replay_both(agent, main, target, seed=2)
    assert_same(agent, main)
    agent.double = True
    replay_both(agent, main, target, seed=3)
    assert_same(agent, main)


def test_the_replay_buffer_keeps_the_last_steps_and_samples_without_replacement():
    buffer = ReplayBuffer(5, 4)
    for i in range(8):
        state = np.full((1, 4), i, np.float32)
        buffer.add((state, i % 2, float(i), state + 100, i == 7))
    assert buffer.size() == len(buffer) == 5
    random.seed(0)
    states, next_states, actions, rewards, dones, steps = buffer.columns(buffer.sample(5))
    assert sorted(rewards) == [3, 4, 5, 6, 7], "the last five, each once"
    assert (steps == 1).all()
    for s, a, r, n, d in zip(states, actions, rewards, next_states, dones):
        assert (s == r).all() and (n == r + 100).all() and a == r % 2 and d == (r == 7)


def test_replay_leaves_exploration_to_the_end_of_the_episode(agent):
    agent.replay(64)
    assert agent.exploration_rate == 1.0


def test_n_step_returns_sum_the_rewards_that_follow_and_stop_at_a_fall(tmp_path):
    agent = TargetAgent(4, 2, str(tmp_path / "w.h5"), n_step=3, gamma=0.5)
    states = [np.full((1, 4), i, np.float32) for i in range(8)]

    def step(i, done=False):
        agent.remember(states[i], i % 2, float(i), states[i + 1], done)

    def stored():
        s, n, a, r, d, k = agent.memory.columns(agent.memory.table[:agent.memory.size()])
        return [(int(s[j][0]), r[j], int(n[j][0]), bool(d[j]), int(k[j])) for j in range(len(r))]

    for i in (1, 2):
        step(i)
    assert stored() == [], "three steps make the first return"
    step(3)
    assert stored() == [(1, 1 + 0.5 * 2 + 0.25 * 3, 4, False, 3)]
    step(4)
    step(5, done=True)   # the pole fell: the rest are stored, with no future
    assert stored()[1:] == [(2, 2 + 0.5 * 3 + 0.25 * 4, 5, False, 3),
                            (3, 3 + 0.5 * 4 + 0.25 * 5, 6, True, 3),
                            (4, 4 + 0.5 * 5, 6, True, 2), (5, 5.0, 6, True, 1)]
    step(1)
    step(2)
    agent.end_episode(1)   # the time limit: stored with the future still to come
    assert stored()[5:] == [(1, 1 + 0.5 * 2, 3, False, 2), (2, 2.0, 3, False, 1)]
