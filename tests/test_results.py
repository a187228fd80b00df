"""Flags, --log, --plot and benchmarks/solve.py (issue 4)."""
import csv
import signal
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cartpole_dqn import CartPole, Progress, parse_args
from conftest import ROOT, SCRIPT, cli_env, episode_scores
from test_agent import remember_some

PNG = b"\x89PNG\r\n\x1a\n"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("agent", ["tutorial", "target"])
def test_log_and_plot_match_the_episode_lines(cli, tmp_path, agent):
    result = cli("--agent", agent, "--episodes", 12, "--seed", 2, "--fresh",
                 "--log", "run.csv", "--plot", "run.png")
    assert result.returncode == 0, result.stderr
    rows = read_csv(tmp_path / "run.csv")
    assert list(rows[0]) == ["episode", "score", "avg100", "exploration", "seconds", "steps"]
    scores = episode_scores(result.stdout)
    assert [int(r["score"]) for r in rows] == scores
    assert [int(r["episode"]) for r in rows] == list(range(12))
    assert [int(r["steps"]) for r in rows] == list(np.cumsum(scores))
    assert [float(r["avg100"]) for r in rows] == pytest.approx(
        [np.mean(scores[:i + 1]) for i in range(12)], abs=0.01)
    seconds = [float(r["seconds"]) for r in rows]
    assert seconds == sorted(seconds) and seconds[-1] > 0
    assert float(rows[0]["exploration"]) == 1.0
    assert float(rows[-1]["exploration"]) < 1.0
    assert (tmp_path / "run.png").read_bytes()[:8] == PNG


def test_an_interrupted_run_keeps_its_log_and_plot(tmp_path):
    run = subprocess.Popen([sys.executable, str(SCRIPT), "--fresh", "--seed", "3",
                            "--log", "run.csv", "--plot", "run.png"],
                           cwd=tmp_path, env=cli_env(), text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for line in run.stdout:
        if line.startswith("Episode 30#"):
            break
    run.send_signal(signal.SIGINT)
    run.communicate(timeout=60)
    assert run.returncode == 130
    assert len(read_csv(tmp_path / "run.csv")) >= 31
    assert (tmp_path / "run.png").read_bytes()[:8] == PNG


def build(tmp_path, *flags):
    return CartPole(parse_args(["--weights", str(tmp_path / "w.h5"), *map(str, flags)]))


def test_defaults_are_the_sources_values(tmp_path):
    tutorial = build(tmp_path)
    agent = tutorial.agent
    assert (tutorial.sample_batch_size, tutorial.episodes, tutorial.options.train_every) == (
        32, 10000, "episode")
    assert (agent.gamma, agent.learning_rate, agent.memory.maxlen) == (0.95, 0.001, 2000)
    assert (agent.exploration_decay, agent.exploration_min) == (0.995, 0.01)
    assert agent.brain.loss == "mse"

    target = build(tmp_path, "--agent", "target")
    agent = target.agent
    assert (target.sample_batch_size, target.episodes, target.options.train_every) == (64, 500, 1)
    assert (agent.gamma, agent.learning_rate, agent.memory.max_size) == (0.99, 0.001, 50000)
    assert (agent.sync_every, agent.sync_by, agent.double, agent.brain.loss) == (
        10, "episode", False, "mse")


def test_flags_change_the_hyperparameters(tmp_path):
    cartpole = build(tmp_path, "--agent", "target", "--gamma", 0.9, "--learning-rate", 0.01,
                     "--batch-size", 16, "--memory-size", 300, "--exploration-decay", 0.9,
                     "--exploration-min", 0.05, "--train-every", 4, "--sync-every", 7,
                     "--sync-by", "replay", "--double", "--loss", "huber")
    agent = cartpole.agent
    assert (cartpole.sample_batch_size, cartpole.options.train_every) == (16, 4)
    assert (agent.gamma, agent.memory.max_size, agent.exploration_decay) == (0.9, 300, 0.9)
    assert agent.exploration_min == 0.05
    assert float(keras.ops.convert_to_numpy(agent.brain.optimizer.learning_rate)) == \
        pytest.approx(0.01)
    assert (agent.sync_every, agent.sync_by, agent.double, agent.brain.loss) == (
        7, "replay", True, "huber")
    assert build(tmp_path, "--train-every", "episode").options.train_every == "episode"
    assert build(tmp_path, "--train-every", "step").options.train_every == 1


@pytest.mark.parametrize("flag", [["--double"], ["--sync-every", "5"], ["--loss", "huber"],
                                  ["--sync-by", "replay"]])
def test_target_only_flags_need_the_target_agent(cli, flag):
    result = cli(*flag)
    assert result.returncode == 2
    assert f"{flag[0]} needs --agent target" in result.stderr


@pytest.mark.parametrize("args", [["--gamma", "1.5"], ["--learning-rate", "0"],
                                  ["--train-every", "0"], ["--train-every", "often"],
                                  ["--batch-size", "0"]])
def test_hyperparameters_out_of_range_are_usage_errors(cli, args):
    result = cli(*args)
    assert result.returncode == 2 and result.stderr.startswith("usage: ")


def test_train_every_n_steps_replays_on_every_nth_step(tmp_path):
    keras.utils.set_random_seed(0)
    cartpole = build(tmp_path, "--agent", "target", "--episodes", 8, "--train-every", 4)
    cartpole.run()
    steps = cartpole.progress.history[-1]["steps"]
    # The memory holds a batch of 64 from step 64 on.
    assert cartpole.agent.replays == len(range(64, steps + 1, 4)) > 0


def test_sync_by_replay_syncs_every_n_replays(tmp_path):
    agent = build(tmp_path, "--agent", "target", "--sync-by", "replay", "--sync-every", 3).agent
    remember_some(agent, 64)
    synced = [w.copy() for w in agent.target_brain.get_weights()]
    agent.replay(64)
    agent.replay(64)
    agent.end_episode(0)   # counting replays: episodes no longer sync
    assert all(np.array_equal(a, b) for a, b in zip(synced, agent.target_brain.get_weights()))
    agent.replay(64)
    assert all(np.array_equal(a, b) for a, b in
               zip(agent.brain.get_weights(), agent.target_brain.get_weights()))


def test_the_average_is_over_the_last_100_episodes_and_solved_needs_100(capsys):
    progress = Progress(parse_args(["--stop-at", "150"]))
    agent = SimpleNamespace(exploration_rate=0.5)
    # 99 episodes of 200 are above the bar, but not yet 100 episodes; then the
    # scores drop, and the average over exactly the last 100 follows them.
    scores = [200] * 99 + list(range(1, 52))
    solved = []
    for index, score in enumerate(scores):
        progress.episode(index, score, agent)
        if progress.solved():
            solved.append(index)
    assert [row["avg100"] for row in progress.history] == [
        np.mean(scores[max(0, i - 99):i + 1]) for i in range(len(scores))]
    assert progress.steps == sum(scores)
    assert solved[0] == 99 and "Solved: the last 100 episodes average 198.0 >= 150" in (
        capsys.readouterr().out)


def test_solve_benchmark_runs_end_to_end(tmp_path):
    # Seeds 3 and 4 both run out of time long before episodes: solve.py stops them
    # with SIGINT, and the weights saved on the way out are played.
    summary = tmp_path / "summary.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "solve.py"), "--name", "tiny",
         "--seeds", "2", "--first-seed", "3", "--episodes", "100000", "--seconds", "2", "--out", str(tmp_path / "out"),
         "--summary", str(summary), "--", "--agent", "tutorial"],
        env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "out" / "table.md").read_text()
    assert "| seed | solved | episodes to 195 |" in table
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["3", "4", "median of 2"]
    assert rows[-1].split("|")[2].strip() == "0/2"
    for seed in (3, 4):
        logged = read_csv(tmp_path / "out" / f"seed{seed}.csv")
        assert 10 < len(logged) < 100000 and float(logged[-1]["seconds"]) >= 2
        assert (tmp_path / "out" / f"seed{seed}.out").read_text().endswith(
            f"Weights saved to {tmp_path / 'out' / f'seed{seed}.h5'}\n")
    assert (tmp_path / "out" / "curve.png").read_bytes()[:8] == PNG
    assert summary.read_text().startswith("| tiny | 0/2 |")


def test_the_recipes_levers_are_flags_whose_defaults_are_the_sources(tmp_path):
    agent = build(tmp_path, "--agent", "target").agent
    assert (agent.hidden_layers, agent.tau, agent.clip_norm, agent.exploration_steps) == (
        (24, 24), 1.0, None, None)
    agent = build(tmp_path, "--agent", "target", "--hidden", 32, 16, "--tau", 0.1,
                  "--clip-norm", 10, "--exploration-steps", 100).agent
    assert [w.shape for w in agent.brain.get_weights()[::2]] == [(4, 32), (32, 16), (16, 2)]
    assert (agent.tau, agent.exploration_steps) == (0.1, 100)
    assert agent.brain.optimizer.global_clipnorm == 10


def test_a_soft_update_moves_the_target_network_tau_of_the_way(tmp_path):
    agent = build(tmp_path, "--agent", "target", "--sync-by", "replay", "--sync-every", 2,
                  "--tau", 0.25).agent
    remember_some(agent, 64)
    target = agent.target_brain.get_weights()
    agent.replay(64)   # no sync yet
    assert all(np.array_equal(a, b) for a, b in zip(target, agent.target_brain.get_weights()))
    agent.replay(64)
    for old, new, synced in zip(target, agent.brain.get_weights(),
                                agent.target_brain.get_weights()):
        np.testing.assert_allclose(synced, 0.25 * new + 0.75 * old, rtol=1e-6, atol=1e-7)


def test_exploration_in_steps_is_a_straight_line_to_its_floor(tmp_path):
    agent = build(tmp_path, "--agent", "target", "--exploration-steps", 100).agent
    remember_some(agent, 50)
    assert agent.exploration_rate == pytest.approx(1 - 0.99 * 0.5)
    agent.end_episode(1)   # no decay per episode on top
    assert agent.exploration_rate == pytest.approx(1 - 0.99 * 0.5)
    remember_some(agent, 80)
    assert agent.exploration_rate == pytest.approx(0.01)


def test_weight_files_remember_their_network(cli, tmp_path):
    trained = cli("--agent", "target", "--hidden", 32, 16, "--episodes", 3, "--seed", 0)
    assert trained.returncode == 0, trained.stderr
    resumed = cli("--agent", "target", "--episodes", 2, "--seed", 0)
    assert resumed.returncode == 0, resumed.stderr
    played = cli("--play", 2, "--seed", 0, "--video", "videos")
    assert played.returncode == 0, played.stderr
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 2
    refused = cli("--hidden", 24, 24, "--episodes", 1)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "holds hidden layers of 32 16" in refused.stderr
    assert cli("--hidden", 24, 24, "--episodes", 1, "--fresh").returncode == 0


def test_recipe_is_the_flags_the_readme_shows(tmp_path):
    from cartpole_dqn import recipe_flags
    short, spelled = parse_args(["--recipe"]), parse_args(recipe_flags().split())
    assert {**vars(spelled), "recipe": True} == vars(short)
    assert recipe_flags() in " ".join((ROOT / "README.md").read_text().split())
    assert parse_args(["--recipe", "--tau", "0.5"]).tau == 0.5, "other flags still change it"
    cartpole = build(tmp_path, "--recipe")
    assert (cartpole.agent.n_step, cartpole.agent.gamma, cartpole.sample_batch_size) == (
        5, 0.995, 128)


def test_recipe_is_for_the_target_agent(cli):
    result = cli("--recipe", "--agent", "tutorial")
    assert result.returncode == 2 and "--recipe is for the target agent" in result.stderr
