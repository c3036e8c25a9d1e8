"""Shared helpers of the benchmarks: threads, dataset loading, peer subprocesses, timing and tables.

Peers run in ``.venv-peers`` (a different interpreter): ``run_peer`` writes the exact encoded rows
that recfunnel trains on to an ``.npz`` in a temporary directory, runs
``.venv-peers/bin/python benchmarks/peers/<script> <npz> <out.json>`` and returns the JSON it wrote.
Nothing here imports a peer library.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recfunnel.data import Batch, movielens_ctr, read_libfm, read_movielens
from recfunnel.schema import Categorical, Label, MultiCategorical, Schema

ROOT = Path(__file__).resolve().parents[1]
PEERS_DIR = ROOT / "benchmarks" / "peers"
PEERS_PYTHON = ROOT / ".venv-peers" / "bin" / "python"
SCRATCH = ROOT / ".bench"
THREADS = 2
ML100K_CATEGORICALS = ("user_id", "item_id", "age", "gender", "occupation", "zip")


# -- environment -----------------------------------------------------------------------------------
def set_threads(threads: int = THREADS) -> None:
    """Pin torch's intra-op threads (the same number is passed to every peer process)."""
    torch.set_num_threads(threads)


def peer_env(threads: int = THREADS) -> dict[str, str]:
    """Environment of a peer process: same thread count, no BLAS oversubscription."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads)
    env["PYTHONWARNINGS"] = "ignore"
    return env


# -- data ------------------------------------------------------------------------------------------
def find_file(directory: Path, name: str) -> Path:
    """``directory/name`` or ``directory/name.gz``, whichever exists."""
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"cannot find {name}(.gz) in {directory}; pass the right --data directory.")


def frappe_dir(data: str | Path) -> Path:
    """Accept either the frappe-nfm directory itself or its parent data directory."""
    path = Path(data)
    return path / "frappe-nfm" if (path / "frappe-nfm").is_dir() else path


def read_frappe(data: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(validation, test) frames of the NFM Frappe split: label + f0..f9 (string feature indices)."""
    directory = frappe_dir(data)
    valid = read_libfm(find_file(directory, "frappe.validation.libfm"))
    test = read_libfm(find_file(directory, "frappe.test.libfm"))
    return valid, test


def frappe_schema(frame: pd.DataFrame) -> Schema:
    """One Categorical per libFM field, label "label"."""
    return Schema(*(Categorical(c) for c in frame.columns if c != "label"), Label("label"))


def read_ml100k_ctr(data: str | Path) -> pd.DataFrame:
    """MovieLens 100K as CTR rows (rating >= 4 is a click), with user and item features."""
    path = Path(data)
    directory = path / "ml-100k" if (path / "ml-100k").is_dir() else path
    return movielens_ctr(read_movielens(directory), threshold=4.0)


def ml100k_schema() -> Schema:
    """user_id, item_id, age, gender, occupation, zip as Categorical; genres as MultiCategorical."""
    return Schema(
        Categorical("user_id", role="user"), Categorical("item_id", role="item"),
        Categorical("age", role="user"), Categorical("gender", role="user"),
        Categorical("occupation", role="user"), Categorical("zip", role="user"),
        MultiCategorical("genres", max_len=6, role="item"), Label("click"),
    )


def feature_meta(schema: Schema, batch: Batch) -> list[dict[str, Any]]:
    """Per input feature: name, kind ("sparse" or "varlen"), vocab_size, maxlen and shares (the
    feature whose vocabulary a shared Sequence reuses, else None), for peers."""
    meta = []
    for spec in schema.inputs:
        column = batch.features[spec.name]
        kind = "varlen" if column.ndim == 2 else "sparse"
        shares = getattr(spec, "shares", None)
        vocab = schema[shares].vocab_size if shares is not None else spec.vocab_size
        meta.append({"name": spec.name, "kind": kind, "vocab_size": int(vocab),
                     "maxlen": int(column.shape[1]) if kind == "varlen" else 1, "shares": shares})
    return meta


def batch_arrays(batch: Batch, label: str | list[str], prefix: str = "") -> dict[str, np.ndarray]:
    """The encoded columns of a Batch as numpy arrays keyed ``{prefix}x.{name}`` and ``{prefix}y``
    (shape (N,), or (N, T) with a column per label when ``label`` is a list)."""
    arrays = {f"{prefix}x.{k}": v.numpy() for k, v in batch.features.items()}
    labels = [label] if isinstance(label, str) else label
    y = np.stack([batch.labels[name].numpy() for name in labels], axis=1).astype(np.float32)
    arrays[f"{prefix}y"] = y[:, 0] if isinstance(label, str) else y
    return arrays


def spelled_model(spelled: str) -> tuple[str, dict[str, str]]:
    """A model named with options on the command line, ``name[:key=value]...``: (name, params).

    Example:
        >>> spelled_model("mmoe:bottom=fm")
        ('mmoe', {'bottom': 'fm'})
    """
    from recfunnel.config import parse_value

    name, *options = spelled.split(":")
    return name, {key: parse_value(value) for key, value in (option.split("=", 1) for option in options)}


# -- peers -----------------------------------------------------------------------------------------
def run_peer(script: str, arrays: dict[str, np.ndarray], config: dict[str, Any], *,
             timeout: float | None = None) -> dict[str, Any]:
    """Run ``benchmarks/peers/<script>`` in the peers venv on ``arrays``; return its JSON output.

    ``config`` travels inside the npz as the JSON string ``__config__``.
    """
    if not PEERS_PYTHON.exists():
        raise SystemExit(f"{PEERS_PYTHON} is missing; build it with `bash ../shared/peers/setup.sh`.")
    with tempfile.TemporaryDirectory(prefix="recfunnel-bench-") as tmp:
        npz, out = Path(tmp) / "rows.npz", Path(tmp) / "out.json"
        np.savez(npz, __config__=np.array(json.dumps(config)), **arrays)
        started = time.perf_counter()
        proc = subprocess.run([str(PEERS_PYTHON), str(PEERS_DIR / script), str(npz), str(out)],
                              cwd=ROOT, env=peer_env(config.get("threads", THREADS)),
                              stdout=subprocess.PIPE, text=True, timeout=timeout)
        if proc.returncode != 0 or not out.exists():
            sys.stderr.write(proc.stdout[-4000:])
            raise RuntimeError(f"peer {script} failed with exit code {proc.returncode}")
        result = json.loads(out.read_text())
        result["process_seconds"] = time.perf_counter() - started
        return result


# -- timing and output -----------------------------------------------------------------------------
def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call."""
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence."""
    return float(statistics.median(values))


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str = "",
                 notes: Sequence[str] = ()) -> str:
    """A plain-text table; floats are written with 4 significant decimals unless pre-formatted."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"
        return str(value)

    body = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)]
    line = "-+-".join("-" * w for w in widths)
    out = [title] if title else []
    out.append(" | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    out.append(line)
    for row in body:
        out.append(" | ".join(
            (c.rjust(w) if i and c[:1].isdigit() else c.ljust(w))
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ))
    out.extend(notes)
    return "\n".join(out)


def save_json(name: str, payload: dict[str, Any]) -> Path:
    """Write raw results to ``.bench/<name>.json`` (git-ignored) for later inspection."""
    SCRATCH.mkdir(exist_ok=True)
    path = SCRATCH / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path


# -- jobs: one system's training in its own process (rank_zoo.py) ----------------------------------
RECFUNNEL_PYTHON = ROOT / ".venv" / "bin" / "python"


def write_rows(path: Path, arrays: dict[str, np.ndarray], info: dict[str, Any]) -> Path:
    """Write encoded rows once for many jobs: ``info`` travels as the JSON string ``__config__``."""
    np.savez(path, __config__=np.array(json.dumps(info)), **arrays)
    return path


def run_job(python: Path, argv: Sequence[str], job: dict[str, Any], *, workdir: Path,
            timeout: float | None = None, pass_job: bool = True) -> dict[str, Any]:
    """Run ``python *argv JOB.json OUT.json`` in its own process and return the JSON it wrote.

    With ``pass_job=False`` the command is ``python *argv OUT.json`` (scripts that read their
    configuration from the npz, like the ``run_peer`` ones); the job is still written for the record.

    The child's own peak RSS is read from ``os.wait4`` (its rusage, not the parent's), so every
    system's memory is measured the same way from outside. Never raises on a failed child: the
    result then holds ``"error"`` with the tail of its output, so one broken peer does not end a
    long run.
    """
    import signal
    import threading

    workdir.mkdir(parents=True, exist_ok=True)
    name = job.get("name", "job").replace(" ", "_").replace("/", "_")
    job_path, out_path, log_path = (workdir / f"{name}.job.json", workdir / f"{name}.out.json",
                                    workdir / f"{name}.log")
    job_path.write_text(json.dumps(job))
    out_path.unlink(missing_ok=True)
    started = time.perf_counter()
    with open(log_path, "w") as log:
        command = [str(python), *map(str, argv), *([str(job_path)] if pass_job else []), str(out_path)]
        proc = subprocess.Popen(command, cwd=ROOT, env=peer_env(job.get("threads", THREADS)), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL)) if timeout else None
        if timer is not None:
            timer.start()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if timer is not None:
            timer.cancel()
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or not out_path.exists():
        tail = log_path.read_text()[-3000:]
        return {"error": f"exit code {proc.returncode} after {seconds:.0f}s; log {log_path}", "log_tail": tail,
                "process_seconds": seconds}
    result = json.loads(out_path.read_text())
    result["process_seconds"] = seconds
    result["peak_rss_mb"] = usage.ru_maxrss / 1024.0  # Linux reports KiB
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    return result
