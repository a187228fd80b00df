"""How often, and how fast, does each agent solve CartPole-v1? The odds over many seeds.

Run by hand, not by CI, after benchmarks/solve.py has run the three configurations (each
command resumes where it stopped):

    python benchmarks/solve.py --name tutorial --seeds 10 --episodes 10000 --seconds 0 --jobs 2
    python benchmarks/solve.py --name source --seeds 20 --seconds 0 --jobs 2 -- --agent target
    python benchmarks/solve.py --name recipe --seeds 20 --first-seed 200 --seconds 0 --jobs 2 -- --recipe
    python benchmarks/odds.py

It writes benchmarks/odds.csv (a row per seed: solved or not, and the episodes, seconds of
training and steps it took; for a seed that never solved, those of its whole run), draws
docs/odds.png (the share of seeds solved against episodes and against seconds of training)
and prints, for each configuration, the solve rate with its 95% interval and the
interquartile mean (IQM) of episodes and seconds to solve with 95% bootstrap intervals.

How an unsolved seed counts: in the rate, as a failure; in the curves, as never reaching the
line; the IQMs are over the solved seeds only, so read them beside the rate. Statistics as
"Deep RL at the Edge of the Statistical Precipice" (Agarwal et al., 2021) recommends, with
SciPy: scipy.stats.bootstrap (BCa) for the IQM, and the Wilson interval for the rate.
"""
import csv
import json
import os
import sys

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGURATIONS = [("tutorial", "the tutorial's agent, as `python cartpole_dqn.py` runs it"),
                  ("source", "the second source as written (`--agent target`)"),
                  ("recipe", "the recipe (`--recipe`)")]
COLUMNS = ["configuration", "seed", "solved", "episodes", "seconds", "steps", "greedy_mean"]


def seeds_of(name):
    """A row per finished seed of a configuration, from solve.py's summary of it."""
    folder = os.path.join(HERE, "runs", name)
    rows = []
    for file in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if file.startswith("seed") and file.endswith(".json"):
            with open(os.path.join(folder, file)) as f:
                result = json.load(f)
            solved = result["solved"]   # else: the whole run's episodes, seconds and steps
            rows.append(dict(configuration=name, seed=result["seed"], solved=int(solved),
                             episodes=result["episodes to 475" if solved else "episodes"],
                             seconds=result["seconds to 475" if solved else "seconds"],
                             steps=result["steps to 475" if solved else "steps"],
                             greedy_mean=result["greedy mean"]))
    return sorted(rows, key=lambda row: row["seed"])


def iqm(values, axis=0):
    # The axis lets scipy's bootstrap take all its resamples in one call, not one by one.
    return stats.trim_mean(values, 0.25, axis=axis)


def iqm_interval(values):
    """The IQM and its 95% bootstrap interval (BCa; percentile where BCa cannot be made)."""
    values = np.asarray(values, float)
    if len(values) < 3:   # too few to bootstrap; none at all: no IQM either
        return (iqm(values) if len(values) else np.nan), np.nan, np.nan
    for method in ("BCa", "percentile"):
        result = stats.bootstrap((values,), iqm, confidence_level=0.95, method=method,
                                 n_resamples=10000, random_state=np.random.default_rng(0))
        low, high = result.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return iqm(values), low, high
    return iqm(values), np.nan, np.nan


def summary(rows):
    solved = [row for row in rows if row["solved"]]
    rate = stats.binomtest(len(solved), len(rows)).proportion_ci(0.95, method="wilson")
    episodes = iqm_interval([row["episodes"] for row in solved])
    seconds = iqm_interval([row["seconds"] for row in solved])
    return len(solved), len(rows), rate, episodes, seconds


def draw(path, table):
    import matplotlib
    matplotlib.use("Agg")   # our own process: no window, no display needed
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for (name, title), colour in zip(CONFIGURATIONS, ["tab:blue", "tab:orange", "tab:green"]):
        rows = table.get(name)
        if not rows:
            continue
        for axis, column in zip(axes, ["episodes", "seconds"]):
            times = sorted(row[column] for row in rows if row["solved"])
            budget = max(row[column] for row in rows)
            xs = [0, *times, budget]
            shares = [0, *np.arange(1, len(times) + 1) / len(rows), len(times) / len(rows)]
            axis.step(xs, shares, where="post", color=colour, linewidth=2,
                      label=f"{name} ({len(times)}/{len(rows)} seeds)")
    # Log scales: the recipe solves in a few hundred episodes and seconds, the tutorial's
    # agent in thousands. Solving needs 100 episodes at least.
    axes[0].set(xscale="log", xlabel="episodes of training", ylabel="share of seeds solved",
                ylim=(0, 1.02), xlim=(100, 10000), xticks=[100, 200, 500, 1000, 2000, 5000, 10000])
    longest = max(row["seconds"] for rows in table.values() for row in rows)
    axes[1].set(xscale="log", xlabel="seconds of training (2 cores, 2 seeds at a time)",
                xlim=(5, 1.5 * longest),
                xticks=[t for t in (5, 10, 20, 50, 100, 200, 500, 1000, 2000) if t < 1.5 * longest])
    for axis in axes:
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.grid(alpha=0.3)
    axes[1].legend(loc="lower right", frameon=False)
    figure.suptitle("How often, and how fast, CartPole-v1 is solved (last-100 average >= 475)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main():
    table = {name: seeds_of(name) for name, _ in CONFIGURATIONS}
    with open(os.path.join(HERE, "odds.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        writer.writeheader()
        for rows in table.values():
            writer.writerows(rows)
    draw(os.path.join(HERE, "..", "docs", "odds.png"), table)
    print("\n".join(markdown(table)))


def markdown(table):
    """The odds table, as docs/results.md and the READMEs show it (tests/test_docs.py checks
    theirs against odds.csv)."""
    lines = ["| configuration | seeds | solved | solve rate (95% interval) | IQM episodes to "
             "solve (95% interval) | IQM seconds to solve (95% interval) |",
             "|---|---|---|---|---|---|"]
    for name, title in CONFIGURATIONS:
        if not table[name]:
            print(f"{name}: no finished seeds in benchmarks/runs/{name}", file=sys.stderr)
            continue
        won, seeds, rate, episodes, seconds = summary(table[name])
        first, last = table[name][0]["seed"], table[name][-1]["seed"]
        lines.append(f"| {title} | {first}-{last} | {won}/{seeds} | {won / seeds:.0%} "
                     f"({rate.low:.0%}-{rate.high:.0%}) | {interval(episodes)} "
                     f"| {interval(seconds)} |")
    return lines


def read(path):
    """odds.csv back into the table that main() wrote it from."""
    table = {name: [] for name, _ in CONFIGURATIONS}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            table[row["configuration"]].append(dict(
                row, seed=int(row["seed"]), solved=int(row["solved"]),
                episodes=int(row["episodes"]), seconds=float(row["seconds"]),
                steps=int(row["steps"]), greedy_mean=float(row["greedy_mean"])))
    return table


def interval(estimate):
    """An IQM and its interval, as the table shows them: "182 (168-232)", or a dash."""
    middle, low, high = estimate
    if np.isnan(middle):
        return "—"
    return f"{middle:.0f}" + ("" if np.isnan(low) else f" ({low:.0f}-{high:.0f})")


if __name__ == "__main__":
    main()
