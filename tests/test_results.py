"""Flags, --log, --plot, the recipe's levers and benchmarks/solve.py (issues 4 and 9)."""
import csv
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest

from cartpole_dqn import RECIPE, CartPole, Progress, parse_args
from conftest import ROOT, cli_env, episode_scores
from test_agent import remember_some

PNG = b"\x89PNG\r\n\x1a\n"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("agent", ["tutorial", "target"])
def test_log_and_plot_match_the_episode_lines(main, tmp_path, agent):
    status, out, err = main("--agent", agent, "--episodes", 12, "--seed", 2, "--fresh",
                            "--log", "run.csv", "--plot", "run.png")
    assert status == 0, err
    rows = read_csv(tmp_path / "run.csv")
    assert list(rows[0]) == ["episode", "score", "avg100", "exploration", "seconds", "steps"]
    scores = episode_scores(out)
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
    assert tutorial.options.checkpoint_every == 60

    target = build(tmp_path, "--agent", "target")
    agent = target.agent
    assert (target.sample_batch_size, target.episodes, target.options.train_every) == (64, 500, 1)
    assert (agent.gamma, agent.learning_rate, agent.memory.max_size) == (0.99, 0.001, 50000)
    assert (agent.sync_every, agent.tau, agent.double, agent.brain.loss) == (10, 1.0, False, "mse")


def test_flags_change_the_hyperparameters(tmp_path):
    cartpole = build(tmp_path, "--agent", "target", "--gamma", 0.9, "--learning-rate", 0.01,
                     "--batch-size", 16, "--memory-size", 300, "--exploration-decay", 0.9,
                     "--exploration-min", 0.05, "--train-every", 4, "--sync-every", 7,
                     "--double")
    agent = cartpole.agent
    assert (cartpole.sample_batch_size, cartpole.options.train_every) == (16, 4)
    assert (agent.gamma, agent.memory.max_size, agent.exploration_decay) == (0.9, 300, 0.9)
    assert agent.exploration_min == 0.05
    assert float(keras.ops.convert_to_numpy(agent.brain.optimizer.learning_rate)) == \
        pytest.approx(0.01)
    assert (agent.sync_every, agent.double) == (7, True)
    assert build(tmp_path, "--train-every", "episode").options.train_every == "episode"
    assert build(tmp_path, "--train-every", "step").options.train_every == 1


def usage_error(capsys, *args):
    with pytest.raises(SystemExit) as stopped:
        parse_args([str(arg) for arg in args])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.startswith("usage: ") and "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize("flag", [["--double"], ["--sync-every", "5"], ["--tau", "0.5"],
                                  ["--n-step", "3"], ["--exploration-steps", "9"]])
def test_target_only_flags_need_the_target_agent(capsys, flag):
    assert f"{flag[0]} needs --agent target" in usage_error(capsys, *flag)


@pytest.mark.parametrize("args", [["--gamma", "1.5"], ["--learning-rate", "0"],
                                  ["--train-every", "0"], ["--train-every", "often"],
                                  ["--batch-size", "0"], ["--episodes", "0"], ["--play", "-1"],
                                  ["--stop-at", "600"], ["--episodes", "ten"], ["--seed", "-3"],
                                  ["--checkpoint-every", "0"]])
def test_arguments_out_of_range_are_usage_errors(capsys, args):
    assert f"argument {args[0]}" in usage_error(capsys, *args)


def test_train_every_n_steps_replays_on_every_nth_step(tmp_path, capsys):
    keras.utils.set_random_seed(0)
    cartpole = build(tmp_path, "--agent", "target", "--episodes", 8, "--train-every", 4)
    cartpole.run()
    steps = cartpole.progress.history[-1]["steps"]
    # The memory holds a batch of 64 from step 64 on; each replay takes two gradient steps.
    replays = int(cartpole.agent.brain.optimizer.iterations) // 2
    assert replays == len(range(64, steps + 1, 4)) > 0


def test_the_target_network_is_copied_every_n_episodes(tmp_path):
    agent = build(tmp_path, "--agent", "target", "--sync-every", 3).agent
    remember_some(agent, 64)
    synced = [w.copy() for w in agent.target_brain.get_weights()]
    agent.replay(64)
    for episode in (1, 2):
        agent.end_episode(episode)
    assert all(np.array_equal(a, b) for a, b in zip(synced, agent.target_brain.get_weights()))
    agent.end_episode(3)
    assert all(np.array_equal(a, b) for a, b in
               zip(agent.brain.get_weights(), agent.target_brain.get_weights()))


def test_a_soft_update_moves_the_target_network_tau_of_the_way_after_each_replay(tmp_path):
    agent = build(tmp_path, "--agent", "target", "--tau", 0.25).agent
    remember_some(agent, 64)
    target = agent.target_brain.get_weights()
    agent.replay(64)
    for old, new, synced in zip(target, agent.brain.get_weights(),
                                agent.target_brain.get_weights()):
        np.testing.assert_allclose(synced, 0.25 * new + 0.75 * old, rtol=1e-6, atol=1e-7)
    synced = agent.target_brain.get_weights()
    agent.end_episode(0)   # no copy at an episode's end on top
    assert all(np.array_equal(a, b) for a, b in zip(synced, agent.target_brain.get_weights()))


def test_exploration_in_steps_is_a_straight_line_to_its_floor(tmp_path):
    agent = build(tmp_path, "--agent", "target", "--exploration-steps", 100).agent
    remember_some(agent, 50)
    assert agent.exploration_rate == pytest.approx(1 - 0.99 * 0.5)
    agent.end_episode(1)   # no decay per episode on top
    assert agent.exploration_rate == pytest.approx(1 - 0.99 * 0.5)
    remember_some(agent, 80)
    assert agent.exploration_rate == pytest.approx(0.01)


def test_the_average_is_over_the_last_100_episodes_and_solved_needs_100(capsys):
    options = parse_args(["--stop-at", "150"])
    progress = Progress(SimpleNamespace(agent=SimpleNamespace(
        exploration_rate=0.5, weight_backup="none.h5"), options=options, sample_batch_size=32))
    # 99 episodes of 200 are above the bar, but not yet 100 episodes; then the scores drop,
    # and the average over exactly the last 100 follows them.
    scores = [200] * 99 + list(range(1, 52))
    solved = []
    progress.best = np.inf   # no best network to write here
    for index, score in enumerate(scores):
        progress.steps += score
        progress.episode(index, score)
        if progress.solved():
            solved.append(index)
    assert [row["avg100"] for row in progress.history] == [
        np.mean(scores[max(0, i - 99):i + 1]) for i in range(len(scores))]
    assert progress.history[-1]["steps"] == sum(scores)
    assert solved[0] == 99 and "Solved: the last 100 episodes average 198.0 >= 150" in (
        capsys.readouterr().out)


def test_a_network_of_other_sizes_resumes_and_plays_with_no_flag(main, tmp_path):
    # The file records the sizes it was built with (issue 24): no --hidden needed after.
    status, out, err = main("--agent", "target", "--hidden", 32, 16, "--episodes", 3, "--seed", 0)
    assert status == 0, err
    assert main("--agent", "target", "--episodes", 2, "--seed", 0)[0] == 0
    status, out, err = main("--play", 2, "--seed", 0, "--video", "videos")
    assert status == 0 and err == "", err
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 2
    assert main("--episodes", 1)[0] == 0, "the tutorial's agent resumes it too"
    assert main("--episodes", 1, "--fresh")[0] == 0


def test_recipe_is_the_flags_the_readme_shows(tmp_path):
    short, spelled = parse_args(["--recipe"]), parse_args(RECIPE.split())
    assert {**vars(spelled), "recipe": True} == vars(short)
    assert RECIPE in " ".join((ROOT / "README.md").read_text().split())
    assert parse_args(["--recipe", "--tau", "0.5"]).tau == 0.5, "other flags still change it"
    cartpole = build(tmp_path, "--recipe")
    assert (cartpole.agent.n_step, cartpole.agent.gamma, cartpole.sample_batch_size) == (
        5, 0.995, 128)
    assert [w.shape for w in cartpole.agent.brain.get_weights()[::2]] == [(4, 64), (64, 64),
                                                                          (64, 2)]


def test_recipe_is_for_the_target_agent(capsys):
    assert "--recipe is for the target agent" in usage_error(capsys, "--recipe", "--agent",
                                                            "tutorial")


def test_solve_benchmark_runs_end_to_end_and_resumes(tmp_path):
    # Seed 3 runs out of time long before its episodes: solve.py stops it with SIGINT, and
    # the weights saved on the way out are played. A second run finds it done.
    command = [sys.executable, str(ROOT / "benchmarks" / "solve.py"), "--name", "tiny",
               "--seeds", "1", "--first-seed", "3", "--episodes", "100000", "--seconds", "1",
               "--out", str(tmp_path / "out"), "--", "--agent", "tutorial"]
    result = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "out" / "table.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [row.split("|")[1].strip() for row in rows] == ["3", "median of 1"]
    assert rows[-1].split("|")[2].strip() == "0/1"
    logged = read_csv(tmp_path / "out" / "seed3.csv")
    assert 10 < len(logged) < 100000 and float(logged[-1]["seconds"]) >= 1
    assert (tmp_path / "out" / "curve.png").read_bytes()[:8] == PNG
    again = subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "seed 3: done already" in again.stdout
    assert read_csv(tmp_path / "out" / "seed3.csv") == logged
