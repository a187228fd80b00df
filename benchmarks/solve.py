"""How often, how fast and how well does a configuration solve CartPole-v1?

Run by hand, not by CI:

    python benchmarks/solve.py --name tutorial
    python benchmarks/solve.py --name recipe -- --agent target --double ...

Everything after `--` goes to cartpole_dqn.py. For each seed (default 0-4) it
trains from scratch under a budget of episodes and seconds of training (0: no
limit), stopping the run with Ctrl-C (SIGINT, which saves the weights) when the
time is up; then it plays the saved weights greedily for 100 games. It writes, in
--out: one CSV log, weight file and summary (seedN.json) per seed, table.md (a
row per seed and a median row), curve.png (median and range of the last-100
average across seeds), and appends the median row to --summary if given.

It resumes: a seed with a summary is done, and the same command run again keeps
it and runs only the others (a seed stopped part-way starts again from scratch).

"Solved" is CartPole-v1's rule: a last-100 average of at least 475. Times are
seconds of training, from the first episode, as logged by --log.
"""
import argparse
import concurrent.futures
import csv
import datetime
import importlib.metadata
import json
import os
import platform
import queue
import re
import shlex
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "..", "cartpole_dqn.py")
COLUMNS = ["seed", "solved", "episodes to 195", "episodes to 475", "steps to 475",
           "seconds to 475", "best avg100", "final avg100", "greedy mean"]


def train(seed, args, out, cpu):
    """Train one seed; returns the rows of its CSV log."""
    log = os.path.join(out, f"seed{seed}.csv")
    for stale in (log, weights(out, seed), weights(out, seed)[:-3] + ".best.h5"):
        if os.path.exists(stale):   # a run stopped part-way: start the seed afresh
            os.remove(stale)
    command = [sys.executable, SCRIPT, "--fresh", "--seed", str(seed),
               "--episodes", str(args.episodes), "--weights", weights(out, seed),
               "--log", log, *args.flags]
    with open(os.path.join(out, f"seed{seed}.out"), "w") as output:
        run = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                               env=quiet_env(), preexec_fn=pin(cpu))
        while run.poll() is None:
            time.sleep(0.5)
            rows = read_log(log)
            if rows and args.seconds and float(rows[-1]["seconds"]) >= args.seconds:
                run.send_signal(signal.SIGINT)   # saves the weights, like Ctrl-C
                run.wait()
    if run.returncode not in (0, 130):
        raise RuntimeError(f"seed {seed} failed (exit {run.returncode}); see {output.name}")
    return read_log(log)


def play(seed, out, cpu):
    """100 greedy games with the weights saved (the file records its network)."""
    result = subprocess.run(
        [sys.executable, SCRIPT, "--play", "100", "--seed", str(1000 + seed),
         "--weights", weights(out, seed)],
        capture_output=True, text=True, env=quiet_env(), check=True, preexec_fn=pin(cpu))
    return float(re.search(r"Mean score over 100 games: ([\d.]+)", result.stdout).group(1))


def say(line):
    """One progress line, written whole, so parallel seeds do not interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def weights(out, seed):
    return os.path.join(out, f"seed{seed}.h5")


def quiet_env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")


def pin(cpu):
    """Run on one core only, so that parallel runs do not slow each other."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def read_log(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("steps")]


def first(rows, bar):
    """The first row whose last-100 average (over a full 100 episodes) reaches bar."""
    return next((row for row in rows[99:] if float(row["avg100"]) >= bar), None)


def summarise(seed, rows, greedy):
    full = rows[99:] or rows
    at195, at475 = first(rows, 195), first(rows, 475)
    return {"seed": seed, "solved": at475 is not None,
            "episodes to 195": int(at195["episode"]) + 1 if at195 else None,
            "episodes to 475": int(at475["episode"]) + 1 if at475 else None,
            "steps to 475": int(at475["steps"]) if at475 else None,
            "seconds to 475": float(at475["seconds"]) if at475 else None,
            "best avg100": max(float(row["avg100"]) for row in full),
            "final avg100": float(rows[-1]["avg100"]),
            "greedy mean": greedy}


def median(values):
    """Median over all seeds; a seed that never got there counts as never."""
    ranked = sorted(values, key=lambda v: float("inf") if v is None else v)
    middle = ranked[(len(ranked) - 1) // 2: len(ranked) // 2 + 1]
    return None if None in middle else statistics.mean(middle)


def cell(value, column=""):
    """Counts and seconds as whole numbers, averages with one decimal."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.1f}" if "avg" in column or "mean" in column else f"{value:.0f}"


def median_row(name, results):
    row = {"seed": name, "solved": f"{sum(r['solved'] for r in results)}/{len(results)}"}
    for column in COLUMNS[2:]:
        row[column] = median([r[column] for r in results])
    return row


def markdown(rows):
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(
            row[c] if isinstance(row[c], str) else cell(row[c], c) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def plot(path, logs, name, episodes):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    curves = np.full((len(logs), episodes), np.nan)
    for i, rows in enumerate(logs):
        averages = [float(row["avg100"]) for row in rows]
        curves[i, :len(averages)] = averages
        curves[i, len(averages):] = averages[-1]   # a run that stopped keeps its last value
    x = np.arange(1, episodes + 1)
    figure, axis = plt.subplots(figsize=(8, 4.5))
    axis.fill_between(x, curves.min(0), curves.max(0), alpha=0.25, label="range over seeds")
    axis.plot(x, np.median(curves, 0), linewidth=2, label="median")
    axis.axhline(475, color="tab:red", linestyle="--", label="solved (475)")
    axis.set(title=f"{name}: last-100 average over {len(logs)} seeds", xlabel="episode",
             ylabel="last-100 average", ylim=(0, 510), xlim=(1, episodes))
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def versions():
    packages = ["tensorflow-cpu", "tensorflow", "keras", "gymnasium", "numpy"]
    found = []
    for package in packages:
        try:
            found.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    return (f"{datetime.date.today()}, Python {platform.python_version()}, "
            f"{', '.join(found)}, {os.cpu_count()} CPUs")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--name", required=True, help="the configuration's name in the tables")
    parser.add_argument("--seeds", type=int, default=5, help="how many seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="the first seed (default 0): --first-seed 5 runs 5..9")
    parser.add_argument("--episodes", type=int, default=500, help="episode budget per seed")
    parser.add_argument("--seconds", type=float, default=180,
                        help="training seconds per seed (0: no limit)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="seeds trained at a time, each pinned to its own core")
    parser.add_argument("--out", help="folder for logs, weights, table and plot "
                                      "(default: benchmarks/runs/NAME)")
    parser.add_argument("--summary", help="a Markdown file to append the median row to")
    parser.add_argument("flags", nargs="*", help="after --: flags for cartpole_dqn.py")
    args = parser.parse_args()
    args.out = args.out or os.path.join(HERE, "runs", re.sub(r"\W+", "-", args.name).strip("-"))
    return args


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    free_cpus = queue.Queue()
    for cpu in (sorted(os.sched_getaffinity(0))[:args.jobs] if args.jobs > 1 else [None]):
        free_cpus.put(cpu)

    def one_seed(seed):
        done = os.path.join(args.out, f"seed{seed}.json")
        if os.path.exists(done):
            say(f"seed {seed}: done already")
            with open(done) as f:
                return read_log(os.path.join(args.out, f"seed{seed}.csv")), json.load(f)
        cpu = free_cpus.get()
        try:
            say(f"seed {seed}: training" + (f" on CPU {cpu}" if cpu is not None else ""))
            rows = train(seed, args, args.out, cpu)
            result = summarise(seed, rows, play(seed, args.out, cpu))
            # The whole run's too, for a seed that never solved (benchmarks/odds.py).
            result["seconds"], result["steps"] = float(rows[-1]["seconds"]), int(rows[-1]["steps"])
            result["episodes"] = len(rows)
            with open(done, "w") as f:
                json.dump(result, f)
            say(f"seed {seed}: " + ", ".join(
                f"{k} {cell(v, k)}" for k, v in result.items() if k in COLUMNS[1:]))
            return rows, result
        finally:
            free_cpus.put(cpu)

    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        logs, results = zip(*pool.map(one_seed, seeds))
    total = median_row(f"median of {len(seeds)}", results)
    command = "python benchmarks/solve.py " + shlex.join(sys.argv[1:])
    budget = f"{args.seconds:g} s" if args.seconds else "no limit of time"
    table = (f"{args.name}: `{command}`\n\n{versions()}; budget {args.episodes} episodes "
             f"and {budget} of training per seed.\n\n" + markdown(list(results) + [total]))
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    plot(os.path.join(args.out, "curve.png"), logs, args.name, args.episodes)
    if args.summary:
        total["seed"] = args.name
        with open(args.summary, "a") as f:
            f.write(markdown([total]).splitlines()[-1] + "\n")
    print(table)


if __name__ == "__main__":
    main()
