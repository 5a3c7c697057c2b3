"""MNRE open-world benchmark: each row of a grid TOML under the open protocol (None samples
added, answer a label or none) and the generalized protocol (seen + unseen labels offered),
seeds 0-4. Writes benchmarks/results/mre_open_world.md (+ .csv, + .png).

    python benchmarks/mre_open_world.py [--grid benchmarks/mre_open_world.toml] [--set k=v ...]
        [--seed N ...] [--open-only | --generalized-only] [--collect-only]

Cells already finished with the same config are reused (delete runs/mre_open_world to rerun).
Seeds run one after the other, both protocols each; the results files are rewritten after
every seed, so an interrupted run leaves the table of the seeds it finished;
`--collect-only` tabulates whatever cells have finished, running none. `--open-only` and
`--generalized-only` run one protocol. The table always holds every finished cell of the
seeds asked for, both protocols: invocations on different seeds or protocols can share the
machine, and a final `--collect-only` tabulates them all.
"""

from __future__ import annotations

import time
from pathlib import Path

from zsmie.experiments import open_world
from zsmie.experiments.runner import grid_from_command_line

GRID = Path(__file__).resolve().parent / "mre_open_world.toml"


def main() -> None:
    grid, command, args = grid_from_command_line(
        __doc__.splitlines()[0], GRID, {"--collect-only": "tabulate the finished cells, run none",
                                        "--open-only": "run the open protocol only",
                                        "--generalized-only": "run the generalized protocol only"})
    started = time.time()
    protocols = ("open",) if args.open_only else ("generalized",) if args.generalized_only else (
        "open", "generalized")

    def write(_records: dict[str, list[dict]]) -> str:  # after every seed: partial results kept
        # Every finished cell of the grid's seeds, both protocols (also those run elsewhere).
        return open_world.write_results(grid, open_world.collect_protocols(grid), command,
                                        time.time() - started)

    if args.collect_only:
        print(open_world.write_results(grid, open_world.collect_protocols(grid), command, None))
        return
    print(write(open_world.run_protocols(grid, after_seed=write, protocols=protocols)))


if __name__ == "__main__":
    main()
