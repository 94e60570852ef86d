"""The ``moalign`` command line: every verb is a few lines over the library."""

from __future__ import annotations

import argparse
import errno
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of ``python -m moalign``."""
    _offline_defaults()
    parser = build_parser()
    args = _parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        with _output(args):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"moalign {args.verb}: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as err:
        if os.environ.get("MOALIGN_DEBUG"):  # MOALIGN_DEBUG=1 shows the traceback instead
            raise
        print(f"moalign {args.verb}: error: {error_message(err)}", file=sys.stderr)
        return 2


# the verbs that load models or datasets: their library progress bars and known-harmless warnings are quieted
# unless -v (moalign.console); the others never import those libraries, so they stay fast
QUIET_VERBS = frozenset({"demo", "train", "eval", "score"})
VERBOSE_HELP = ("show the libraries' own output as well: every progress bar, the raw log dicts of the trainers, "
                "every warning (default: one bar per stage and one formatted line per training log)")


def _output(args):
    """What a verb prints: quieted by :func:`moalign.console.quiet_output` unless ``-v``."""
    if args.verb not in QUIET_VERBS or args.verbose:
        return nullcontext()
    from moalign.console import quiet_output

    return quiet_output()


def _user_errors() -> tuple[type[BaseException], ...]:
    """The errors a user can cause, shown as one line: a bad value or key (ConfigError is a ValueError), a system
    error, a run directory another process holds. Evaluated only once an error is raised (import stays fast)."""
    from moalign.pipeline import RunError

    return (ValueError, KeyError, OSError, RunError)


_OS_FIXES = {
    errno.EACCES: "fix the permissions, or choose another path",
    errno.EPERM: "fix the permissions, or choose another path",
    errno.EROFS: "the file system is read-only; choose a path on a writable one",
    errno.ENOSPC: "the disk is full; free some space or choose a path on another disk",
    errno.ENOENT: "check that the path exists",
    errno.ENOTDIR: "a part of the path is a file, not a folder; check the path",
    errno.EISDIR: "the path is a folder; give a file path",
}


def error_message(err: BaseException) -> str:
    """What follows ``error:``: the message, or for a system error the path, the reason and a fix."""
    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    if isinstance(err, OSError) and err.strerror:
        where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
        fix = _OS_FIXES.get(err.errno, "check the path, its permissions and the free space")
        return f"{where + ': ' if where else ''}{err.strerror}; {fix}"
    return str(err)


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """The arguments, with ``key=value`` overrides accepted on either side of a flag (``train M cfg a=1 --no-eval
    b=2``): argparse stops filling a positional list at the first flag, and its intermixed parsing does not take
    sub-commands, so the overrides it leaves over are appended here."""
    args, rest = parser.parse_known_args(argv)
    stray = [item for item in rest if item.startswith("-") or "=" not in item]
    if stray or (rest and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(stray or rest)}")
    if rest:
        args.overrides = [*args.overrides, *rest]
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moalign",
        description="Multi-objective alignment of language models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("demo", help="run the embedded end-to-end demo")
    p.add_argument("--run-dir", default="runs/demo", help="where the runs and the report go (default: runs/demo)")
    p.add_argument("--methods", default="paretohqd,ric", help="comma-separated methods to train and compare")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every method's config")
    p.set_defaults(func=_demo)

    p = sub.add_parser("build", help="build the embedded tiny model and task")
    p.add_argument("--preset", default="default", help="tiny-model preset (default | test)")
    p.set_defaults(func=_build)

    p = sub.add_parser("score", help="score responses with rewards")
    p.add_argument("data", help="JSONL/Parquet/dataset folder with prompt and response columns")
    p.add_argument("--rewards", required=True, help="comma-separated reward specs (rule, preset or hf:<path>)")
    p.add_argument("--objectives", help="comma-separated objective names (default: the reward specs)")
    p.add_argument("--out", required=True,
                   help="output: .jsonl or .parquet file, else a dataset folder; an existing one is refused")
    p.add_argument("--stats-out", help="also fit z-score statistics and save them here (JSON); an existing file "
                   "is refused. Fitted before anything is written: a constant reward writes nothing")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_score)

    p = sub.add_parser("select", help="Pareto layers and direction selection",
                       description="Keep the top L non-dominated layers of a scored file and, with --preference, "
                       "the k of them nearest that preference's ray (ParetoHqD's selection, moalign.pareto).")
    p.add_argument("scored", help="scored file (see `moalign score`)")
    p.add_argument("--layers", type=int, default=1, help="keep the top L non-dominated layers (default 1)")
    p.add_argument("--preference", help="w, one weight per objective in the file's order, comma-separated, "
                   "summing to 1 (e.g. 0.3,0.7): keep the k points nearest to its direction (needs 2+ objectives)")
    p.add_argument("--k", type=int, default=100, help="how many points to keep along the direction (>= 1)")
    p.add_argument("--ideal-nadir", choices=IDEAL_NADIR_CHOICES, default="data",
                   help="ideal/nadir of the preference ray: per-objective max/min over all rows (data, the default, "
                   "as ParetoHqD's ideal_nadir) or over the kept layers only (hq); a constant objective gets "
                   "nadir = ideal - 1, with a warning")
    p.add_argument("--out", required=True, help="output (.jsonl or .parquet file, else a dataset folder) with the "
                   "selected rows and a pareto_layer column; an existing one is refused")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_select)

    p = sub.add_parser("train", help="train a method", add_help=False)
    p.add_argument("-h", "--help", action=MethodHelp, help="show this help and, after METHOD, the method's fields")
    p.add_argument("method", help="method name (see `moalign methods`)")
    p.add_argument("config", nargs="?", help="YAML config, or a shipped config's name such as embedded/dpo "
                   "(default: the method's embedded config, embedded/<method>)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. method.train.max_steps=10")
    p.add_argument("--no-eval", action="store_true", help="train only; skip the evaluation sweep")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="evaluate a policy family over a preference grid")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=_eval)

    p = sub.add_parser("report", help="compare run directories")
    p.add_argument("run_dirs", nargs="+")
    p.add_argument("--out", help="report folder (default: the first run's report/ or ./report for several runs); "
                   "an existing --out is refused unless --overwrite")
    p.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    p.set_defaults(func=_report)

    p = sub.add_parser("methods", help="list the registered methods")
    p.set_defaults(func=_methods)

    p = sub.add_parser("config", help="print a method's full default config (YAML, every field)",
                       description="Print METHOD's config as `moalign train METHOD` uses it without a config file: "
                       "its embedded config (configs/embedded/METHOD.yaml) over the dataclass defaults, every field "
                       "written out, so it can be saved, edited and passed back: "
                       "moalign config dpo > my.yaml; moalign train dpo my.yaml. With --path NAME: the file of a "
                       "shipped config, wherever moalign is installed (accelerate launch --config_file "
                       "$(moalign config --path accelerate/multi_gpu) ...)")
    p.add_argument("method", nargs="?", help="method name (see `moalign methods`)")
    p.add_argument("--path", metavar="NAME", help="print the file of shipped config NAME (e.g. accelerate/multi_gpu, "
                   "real/sipo_pku_saferlhf) and exit")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied before printing")
    p.set_defaults(func=_config)
    for verb_parser in sub.choices.values():  # -v also after the verb; SUPPRESS keeps one given before it
        verb_parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)
    return parser


class MethodHelp(argparse.Action):
    """``moalign train METHOD --help``: argparse's help, then every field of METHOD's config section."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.print_help()
        method = getattr(namespace, "method", None)
        print("\n" + (method_fields_help(method) if method else
                      "`moalign train METHOD --help` also lists METHOD's fields."))
        parser.exit()


def method_fields_help(method: str) -> str:
    """The fields of ``method``'s ``method:`` section: key, type, default, meaning (and the embedded config's
    value where it differs); an unknown method gets the registry's error instead."""
    from moalign.config import to_dict
    from moalign.config_help import field_rows, flat_keys, format_rows, show_value
    from moalign.methods.registry import default_config_path, get_method, method_config

    try:
        spec = get_method(method)
    except KeyError as err:
        return str(err.args[0])
    rows = field_rows(spec.config_cls, "method")
    embedded = default_config_path(method)
    changed = {}
    if embedded is not None:
        changed = {k: show_value(v) for k, v in flat_keys(to_dict(method_config(method).method), "method").items()}
    head = (f"fields of {method} ({spec.config_cls.__name__}; key, type, default, meaning). Set them in the config's "
            "method: section or as key=value overrides; method.train (and every other TrainSettings section) also "
            "takes any transformers.TrainingArguments field, e.g. method.train.optim=adamw_torch_fused. "
            f"The run-level sections (run_dir, seed, task, model, eval): `moalign config {method}`."
            + (f" [{embedded.name}: X]: the value configs/embedded/{embedded.name} sets (used without a config)."
               if embedded else ""))
    return f"{head}\n{format_rows(rows, changed, embedded.name if embedded else '')}"


OVERWRITE_HELP = ("replace an existing output file or folder (atomically, once the new one is fully written); "
                  "without it an existing output is refused and left untouched")
IDEAL_NADIR_CHOICES = ("data", "hq")  # moalign.methods.paretohqd.select.IDEAL_NADIR_RULES (checked by a test)


def _offline_defaults() -> None:
    """Quiet, offline-friendly defaults; a user's own environment settings win."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()] if text else []


def _demo(args) -> int:
    from moalign.demo import run_demo

    run_demo(args.run_dir, _split(args.methods), args.overrides)
    return 0


def _build(args) -> int:
    from moalign.models.tiny import ensure_tiny_model

    print(ensure_tiny_model(preset=args.preset))
    return 0


def _score(args) -> int:
    from moalign.data import ScoredSet, load_scored, save_scored
    from moalign.data.io import check_finite_scores
    from moalign.io_utils import atomic_write_json
    from moalign.rewards import build_rewards
    from moalign.rewards.base import score_matrix
    from moalign.rewards.normalize import ZScore

    specs = _split(args.rewards)
    objectives = _split(args.objectives) or specs
    if len(objectives) != len(specs):
        raise ValueError(f"--objectives names {len(objectives)} objectives but --rewards gives {len(specs)} rewards")
    out = output_path(args.out, "--out", overwrite=args.overwrite, inputs=[args.data])
    stats_out = (output_path(args.stats_out, "--stats-out", overwrite=args.overwrite, inputs=[args.data])
                 if args.stats_out else None)
    if stats_out is not None and stats_out.absolute() == out.absolute():
        raise ValueError(f"--stats-out and --out both name {out}; give the statistics their own file")
    data = load_scored(args.data, objectives=[])
    scores = score_matrix(build_rewards(specs), data.prompts, data.responses, progress=True)
    scored = ScoredSet(data.prompts, data.responses, scores, objectives, data.ids)
    check_finite_scores(scored, out)
    stats = ZScore(objectives).fit(scores) if stats_out is not None else None  # a constant reward fails here
    with writing("--out", out):
        save_scored(scored, out, overwrite=args.overwrite)
    if stats is not None:
        with writing("--stats-out", stats_out):
            atomic_write_json(stats_out, stats.to_dict(), overwrite=args.overwrite)
    print(f"scored {len(data)} responses on {objectives} -> {out}")
    return 0


def _select(args) -> int:
    import numpy as np

    from moalign.data import load_scored
    from moalign.data.io import scored_columns, write_columns
    from moalign.pareto import pareto_layers

    _require_count(args.layers, "--layers", "how many non-dominated layers to keep")
    _require_count(args.k, "--k", "how many rows to keep along the preference direction")
    out = output_path(args.out, "--out", overwrite=args.overwrite, inputs=[args.scored])
    data = load_scored(args.scored)
    ranks = pareto_layers(data.scores, max_layers=args.layers)
    keep = np.flatnonzero(ranks >= 0)
    if args.preference:
        keep = _along_preference(data, keep, args)
    selected = data.subset(keep)
    columns = {**scored_columns(selected), "pareto_layer": ranks[keep].tolist()}
    with writing("--out", out):
        write_columns(columns, out, overwrite=args.overwrite)
    print(f"kept {len(selected)} of {len(data)} rows (top {args.layers} layer(s)) -> {out}")
    return 0


def _along_preference(data, keep, args):
    """The ``--k`` rows of ``keep`` nearest the ``--preference`` ray; ideal/nadir by ParetoHqD's own rule."""
    import numpy as np

    from moalign.methods.paretohqd.select import ideal_nadir
    from moalign.pareto import preference_direction_distance, select_nearest_to_direction

    if len(data.objectives) < 2:
        raise ValueError(f"--preference needs at least two objectives, but {args.scored} has one "
                         f"({data.objectives[0]!r}), so there is no trade-off to choose along; drop --preference "
                         "(--layers L alone keeps the L best score levels)")
    w = parse_preference(args.preference, data.objectives)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ideal, nadir = ideal_nadir(data.scores, keep, rule=args.ideal_nadir)
    for warning in caught:
        print(f"moalign select: warning: {warning.message}", file=sys.stderr)
    with np.errstate(over="ignore", invalid="ignore"):
        dist = preference_direction_distance(data.scores[keep], w, ideal, nadir)
        if not (np.all(np.isfinite(dist)) and np.all(np.isfinite(ideal - nadir))):
            top = float(np.abs(data.scores).max())
            raise ValueError(f"{args.scored}: scores up to {top:.3g} in magnitude overflow float64 when measuring "
                             "the distance to the --preference direction; rescale the scores (e.g. z-score them, "
                             f"or divide by 1e{max(int(np.log10(top)) - 100, 1)}) and select again")
        return select_nearest_to_direction(data.scores, w, ideal, nadir, args.k, candidates=keep)


def parse_preference(text: str, objectives: list[str]):
    """``--preference`` as a simplex vector over ``objectives``; errors name the flag and the expected form."""
    from moalign.pareto import validate_preference

    m = len(objectives)
    share = round(1.0 / m, 3)
    example = ",".join([f"{share:g}"] * (m - 1) + [f"{1 - share * (m - 1):.3g}"])
    form = (f"give {m} comma-separated weights, one per objective ({', '.join(objectives)}), summing to 1, "
            f"e.g. --preference {example}")
    try:
        values = [float(x) for x in _split(text)]
    except ValueError:
        raise ValueError(f"--preference {text!r} is not a list of numbers; {form}") from None
    try:
        return validate_preference(values, m, name="--preference")
    except ValueError as err:
        raise ValueError(f"{err}; {form}") from None


def _require_count(value: int, flag: str, what: str) -> None:
    if value < 1:
        raise ValueError(f"{flag} {value}: {what} must be at least 1")


@contextmanager
def writing(flag: str, path: Path) -> Iterator[None]:
    """Turn a system error while writing an output into one naming the flag and the path the user gave
    (not the temporary file beside it)."""
    try:
        yield
    except OSError as err:
        if not err.strerror:
            raise
        fix = _OS_FIXES.get(err.errno, "check the path, its permissions and the free space")
        raise OSError(f"cannot write {flag} {path}: {err.strerror}; {fix}") from err


def output_path(text: str, flag: str, *, overwrite: bool, inputs: Sequence[str] = ()) -> Path:
    """Check an output path before any work: nothing there (or ``overwrite``), and a writable folder above it.

    Even with ``overwrite``, a folder holding the current folder or an input is refused (replacing it would
    delete them). Missing folders on the way are created later, when the output is written.
    """
    from moalign.io_utils import describe

    path = Path(text)
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(f"{flag} {path} already exists ({describe(path)}); it is left untouched: pass "
                              "--overwrite to replace it, or choose another path")
    if overwrite and path.is_dir() and not path.is_symlink():
        target = path.resolve()
        for held, what in ((Path.cwd(), "the current folder"), *((Path(p).resolve(), f"the input {p}") for p in inputs)):
            if held == target or target in held.parents:
                raise ValueError(f"{flag} {path} is a folder holding {what}; --overwrite would delete it, so it is "
                                 "refused: choose another output path")
    folder = path.parent
    while not os.path.lexists(folder):
        folder = folder.parent
    if not folder.is_dir():
        raise NotADirectoryError(f"{flag} {path}: {folder} is a file, not a folder; choose another path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{flag} {path}: the folder {folder} is not writable (permissions or a read-only "
                              "file system); choose a writable folder, or fix its permissions")
    return path


def _train(args) -> int:
    from moalign.methods.train_run import train_command

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not os.path.exists(config):  # only overrides were given
        config, overrides = None, [config, *overrides]
    return train_command(args.method, config, overrides, evaluate=not args.no_eval)


def _eval(args) -> int:
    from moalign.eval.harness import eval_command

    return eval_command(args.config, args.overrides)


def _report(args) -> int:
    from moalign.eval.report import report_command

    out = None if args.out is None else output_path(args.out, "--out", overwrite=args.overwrite, inputs=args.run_dirs)
    return report_command(args.run_dirs, out, overwrite=args.overwrite)


def _config(args) -> int:
    from moalign.config import ConfigError, config_yaml
    from moalign.methods.registry import default_config_path, method_config

    if args.path:
        from moalign.shipped_configs import resolve_config

        print(resolve_config(args.path).resolve())
        return 0
    if not args.method:
        raise ConfigError("name a method (see `moalign methods`), or --path NAME for a shipped config's file")
    config = method_config(args.method, None, args.overrides)
    source = default_config_path(args.method)
    print(f"# moalign config {args.method}: {'configs/embedded/' + source.name if source else 'the defaults'} over "
          f"the dataclass defaults, every field.\n# Save, edit and run it: moalign train {args.method} FILE.yaml")
    print(config_yaml(config), end="")
    return 0


def _methods(args) -> int:
    from moalign.methods.registry import METHOD_MODULES, get_method

    for name in sorted(METHOD_MODULES):
        try:
            summary = get_method(name).summary
        except ImportError as err:  # a method whose optional dependency is missing still lists
            summary = f"(unavailable: {err})"
        print(f"{name:15s} {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
