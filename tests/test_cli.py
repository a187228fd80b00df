"""End to end through the real command line, in a temporary folder."""
import numpy as np

from conftest import episode_scores


def test_train_resume_and_play(cli, tmp_path):
    first = cli("--episodes", 20, "--seed", 0, "--fresh")
    assert first.returncode == 0, first.stderr
    scores = episode_scores(first.stdout)
    assert len(scores) == 20
    assert all(8 <= s <= 500 for s in scores)
    assert (tmp_path / "cartpole_weight.h5").stat().st_size > 0
    assert "Weights saved to cartpole_weight.h5" in first.stdout

    again = cli("--episodes", 20, "--seed", 0, "--fresh")
    assert episode_scores(again.stdout) == scores

    played = cli("--play", 3)
    assert played.returncode == 0, played.stderr
    assert len([l for l in played.stdout.splitlines() if l.startswith("Play ")]) == 3
    assert "Mean score over 3 games" in played.stdout


LEARN_EPISODES, LEARN_BAR = 500, 150


def test_it_learns(cli):
    # Random play averages about 22 steps. Measured here, seed 0 first passed a
    # last-100 average of 150 at episode 367 (about 6 s); --stop-at ends it there.
    result = cli("--episodes", LEARN_EPISODES, "--seed", 0, "--fresh", "--stop-at", LEARN_BAR)
    assert result.returncode == 0, result.stderr
    scores = episode_scores(result.stdout)
    assert "Solved: the last 100 episodes average" in result.stdout
    assert np.mean(scores[-100:]) >= LEARN_BAR


def test_target_agent_trains_plays_and_records(cli, tmp_path):
    trained = cli("--agent", "target", "--episodes", 20, "--seed", 0, "--fresh")
    assert trained.returncode == 0, trained.stderr
    assert len(episode_scores(trained.stdout)) == 20
    assert (tmp_path / "cartpole_weight.h5").stat().st_size > 0

    played = cli("--agent", "target", "--play", 2, "--seed", 0, "--video", "videos")
    assert played.returncode == 0, played.stderr
    videos = sorted((tmp_path / "videos").glob("*.mp4"))
    assert [v.name for v in videos] == ["cartpole-episode-0.mp4", "cartpole-episode-1.mp4"]
    assert all(v.stat().st_size > 1000 for v in videos)
    assert played.stderr == ""
