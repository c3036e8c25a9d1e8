"""The `recfunnel` command: parses arguments, calls the api, prints tables or JSON."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Any

from recfunnel.errors import RecfunnelError

# recfunnel.data.frames.FORMATS, spelled out so that parsing arguments does not import pandas
FORMATS = ("csv", "tsv", "parquet", "libfm", "criteo", "sequences", "yoochoose", "diginetica", "ali_ccp", "census")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recfunnel", description="Deep recommender: recall -> rank -> rerank.")
    parser.add_argument("--verbose", "-v", action="store_true", help="log progress details")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                        help="import this module first, so the models it registers can be trained or loaded "
                             "(repeat for several; artifacts never name modules themselves)")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a model on a CSV/TSV/parquet/libFM file")
    train.add_argument("config", nargs="?", help="YAML config holding model/data/trainer sections")
    train.add_argument("--model", help="registry name, e.g. deepfm (see `recfunnel models`)")
    train.add_argument("--train", help="training data file")
    train.add_argument("--valid", help="validation data for early stopping")
    train.add_argument("--label", help="label column")
    train.add_argument("--schema", help="schema YAML/JSON; inferred from the data when omitted")
    train.add_argument("--format", choices=FORMATS, help="input format")
    train.add_argument("--on-nan", choices=["mean", "error"], help="NaN in numeric columns (default: mean)")
    train.add_argument("--negative-sampling", type=float, metavar="W",
                       help="train on all positives and this share of negatives; predictions stay calibrated")
    train.add_argument("--objective", choices=["pointwise", "pairwise", "listwise"],
                       help="learning to rank a binary label within the lists of --group (pairwise: BPR, "
                            "listwise: softmax over each list); early stopping watches NDCG@10")
    train.add_argument("--group", metavar="COL", help="the column naming each row's list, e.g. user_id")
    train.add_argument("--allow-single-class", action="store_true", default=None,
                       help="train even if the binary label is all 0 or all 1 (warns; the model is a constant)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override an option, e.g. embedding_dim=10 or trainer.max_epochs=5")
    train.add_argument("--user-col", help="retrieval models: the user id column (default user_id)")
    train.add_argument("--item-col", help="retrieval models: the item id column (default item_id)")
    train.add_argument("--time-col", help="retrieval models: timestamp column (orders histories)")
    train.add_argument("--weight-col", help="retrieval models: interaction weight column")
    train.add_argument("--user-features", help="retrieval models: table of user features keyed by --user-col")
    train.add_argument("--item-features", help="retrieval models: table of item features keyed by --item-col")
    train.add_argument("--out", help="artifact directory to write (default runs/<model>)")
    train.add_argument("--json", action="store_true", help="print the result as JSON")
    train.add_argument("--stream", action="store_true", default=None,
                       help="read --train (a file, a directory of parts or a glob) in chunks, never whole: "
                            "for data larger than memory (ranking and multi-task models)")
    train.add_argument("--nproc", type=int, default=1, metavar="N",
                       help="train in N processes on this machine (torchrun, gloo); each takes 1/N of every batch "
                            "(with --stream: each reads its own parts, at least N of them)")

    evaluate = sub.add_parser("evaluate", help="metrics of a saved model on labelled data")
    evaluate.add_argument("artifact")
    evaluate.add_argument("--data", required=True)
    evaluate.add_argument("--format", choices=FORMATS)
    evaluate.add_argument("--exclude", action="append", default=[], metavar="FILE",
                          help="retrieval: more interactions to leave out of the ranking (e.g. valid.csv)")
    evaluate.add_argument("--k", default=None, help="retrieval: cut-offs, comma-separated (default 10,20,50)")
    evaluate.add_argument("--json", action="store_true")
    evaluate.add_argument("--stream", action="store_true",
                          help="read --data (a file, a directory of parts or a glob) in chunks (ranking models)")

    recommend = sub.add_parser("recommend", help="top-k items for users with a saved retrieval model or funnel")
    recommend.add_argument("artifact")
    recommend.add_argument("--user", action="append", required=True, help="user id (repeat for several)")
    recommend.add_argument("--k", type=int, default=10)
    recommend.add_argument("--include-seen", action="store_true", help="do not leave out the user's training items")
    recommend.add_argument("--recent", metavar="ITEMS",
                           help="item ids the user took since training, oldest first, comma-separated (e.g. 7,19,3): "
                                "history-reading models (sequential ones above all) read them as the latest")
    recommend.add_argument("--json", action="store_true")

    similar = sub.add_parser("similar", help="items most similar to an item with a saved retrieval model or funnel")
    similar.add_argument("artifact")
    similar.add_argument("--item", action="append", required=True, help="item id (repeat for several)")
    similar.add_argument("--k", type=int, default=10)
    similar.add_argument("--json", action="store_true")

    predict = sub.add_parser("predict", help="score rows with a saved model")
    predict.add_argument("artifact")
    predict.add_argument("--data", required=True)
    predict.add_argument("--format", choices=FORMATS)
    predict.add_argument("--out", required=True, help="CSV file to write (one 'score' per input row)")
    predict.add_argument("--keep", default="", help="comma-separated input columns to copy into the output")
    predict.add_argument("--stream", action="store_true",
                         help="read --data in chunks and append each chunk's scores to --out")

    models = sub.add_parser("models", help="list the registered models")
    models.add_argument("--kind", help="only this kind (ranking, retrieval, ...)")
    models.add_argument("--json", action="store_true")

    from recfunnel.cli.serve import add_serve_parser

    add_serve_parser(sub)

    build = sub.add_parser("build", help="assemble trained recall/rank stages and rerankers into a funnel")
    build.add_argument("config", help="funnel YAML: recall, rank, rerank, items, users, out")
    build.add_argument("--out", help="funnel artifact directory (overrides the config's out)")
    build.add_argument("--train", help="interactions to train every stage on, when the YAML names models")
    build.add_argument("--user-col", default="user_id")
    build.add_argument("--item-col", default="item_id")
    build.add_argument("--time-col", help="orders each user's interactions (default: row order)")
    build.add_argument("--json", action="store_true")

    demo = sub.add_parser("demo", help="data -> rankers, recall models -> funnel table -> saved funnel -> server")
    demo.add_argument("--data", help="a MovieLens 100K/1M directory instead of the synthetic shop")
    demo.add_argument("--out", default="artifacts/demo")
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--items", type=int, default=500)
    demo.add_argument("--impressions", type=int, default=300_000)
    demo.add_argument("--epochs", type=int, default=5)
    demo.add_argument("--no-serve", action="store_true", help="stop after the table instead of serving the funnel")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--json", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # what --nproc hands to the worker processes
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    # one line per epoch and the epoch early stopping kept, also when stderr is not a terminal
    logging.getLogger("recfunnel.train").setLevel(logging.INFO)
    from recfunnel.cli import commands
    from recfunnel.cli.plugins import import_plugins

    try:
        import_plugins(args.plugin)
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning  # restored by catch_warnings on exit
            return getattr(commands, f"run_{args.command}")(args)
    except RecfunnelError as exc:
        _error(f"{type(exc).__name__}: {exc}")
    except ImportError as exc:  # an optional extra is missing; the message names it
        _error(str(exc))
    except FileNotFoundError as exc:
        _error(f"file not found: {exc.filename or exc}")
    except OSError as exc:  # e.g. --out names a path inside a file or an unwritable directory
        _error(f"{exc.strerror or exc}: {exc.filename!r}" if exc.filename else str(exc))
    except KeyboardInterrupt:
        _error("interrupted")
    return 2


def _for_cli(message: str) -> str:
    """Library messages name Python arguments; add the flag a command-line user would type."""
    if "on_nan=" in message:
        message += " (on the command line: --on-nan mean or --on-nan error)"
    if "allow_single_class=True" in message:
        message += " (on the command line: --allow-single-class)"
    return message


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Print a warning as one 'warning: ...' line, without the library's file name and source line."""
    _print("warning: ", "bold yellow", _for_cli(str(message)))


def _error(message: str) -> None:
    _print("error: ", "bold red", _for_cli(message))


def _print(prefix: str, style: str, message: str) -> None:
    from rich.console import Console
    from rich.text import Text

    # Text, not markup: messages quote user values such as [400, 400] that markup would eat.
    Console(stderr=True, highlight=False, soft_wrap=True).print(Text.assemble((prefix, style), message))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
