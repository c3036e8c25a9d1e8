"""``recfunnel train --nproc N``: the same command in N processes on this machine, through torchrun."""

from __future__ import annotations

import os
import subprocess
import sys

#: The most processes ``--nproc`` starts on one machine.
MAX_PROCESSES = 256


def without_nproc(argv: list[str]) -> list[str]:
    """``argv`` less its ``--nproc N`` (or ``--nproc=N``): what each worker process runs.

    Example:
        >>> without_nproc(["train", "--model", "fm", "--nproc", "2", "--json"])
        ['train', '--model', 'fm', '--json']
    """
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def launch(argv: list[str], nproc: int) -> int:
    """Run ``recfunnel <argv>`` in ``nproc`` processes (torchrun, a rendezvous on this machine);
    returns torchrun's exit code, non-zero when any process failed (torchrun then stops the rest)."""
    from recfunnel.serving.workers import threads_per_worker  # the cores shared out, no oversubscription

    env = {**os.environ, "OMP_NUM_THREADS": str(threads_per_worker(nproc))}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
               "-m", "recfunnel", *without_nproc(argv)]
    return subprocess.run(command, env=env, check=False).returncode
