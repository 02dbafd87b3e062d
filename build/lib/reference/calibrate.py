"""Reproduce the recall calibration: ``OMP_NUM_THREADS=1 python -m reference.calibrate``.

Trains :func:`reference.recall.train_recall` for both cells and several seeds with the default
(calibrated) settings and prints held-out accuracy and wall-clock seconds per model, as a table
and as a Python literal that can be pasted into ``CALIBRATION["results"]``.
"""

from __future__ import annotations

import argparse
import pprint
import time

import torch

from reference.recall import CALIBRATION, accuracy, make_recall_data, train_recall


def measure(
    seeds: list[int], seq_len: int, n_classes: int
) -> dict[str, dict[int, dict[str, float]]]:
    """Train every (cell, seed) pair and measure it.

    Parameters
    ----------
    seeds : list of int
        Training seeds.
    seq_len, n_classes : int
        Task size.

    Returns
    -------
    dict
        ``results[cell][seed] = {"accuracy": float, "seconds": float}``.

    Notes
    -----
    The held-out set uses a seed no training batch uses, so accuracy measures the task, not
    memorised batches.
    """
    x, y = make_recall_data(CALIBRATION["heldout_n"], seq_len, n_classes, CALIBRATION["heldout_seed"])
    results: dict[str, dict[int, dict[str, float]]] = {"lstm": {}, "rnn": {}}
    for cell in ("lstm", "rnn"):
        for seed in seeds:
            t0 = time.perf_counter()
            model = train_recall(cell, seq_len, n_classes, seed)
            seconds = time.perf_counter() - t0
            acc = accuracy(model, x, y)
            results[cell][seed] = {"accuracy": round(acc, 4), "seconds": round(seconds, 1)}
            print(f"{cell:4s} seed {seed}: acc {acc:.3f}  {seconds:5.1f} s", flush=True)
    return results


def main() -> None:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seq-len", type=int, default=CALIBRATION["seq_len"])
    parser.add_argument("--n-classes", type=int, default=CALIBRATION["n_classes"])
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    results = measure(args.seeds, args.seq_len, args.n_classes)
    print("\nseed | LSTM acc | LSTM s | RNN acc | RNN s")
    for seed in args.seeds:
        lstm, rnn = results["lstm"][seed], results["rnn"][seed]
        print(
            f"{seed:4d} | {lstm['accuracy']:8.3f} | {lstm['seconds']:6.1f} | "
            f"{rnn['accuracy']:7.3f} | {rnn['seconds']:5.1f}"
        )
    print()
    pprint.pprint(results)


if __name__ == "__main__":
    main()
