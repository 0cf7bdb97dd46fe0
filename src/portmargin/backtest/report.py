r"""Regenerate the figures of ``docs/backtest.md`` (one command).

::

    python -m portmargin.backtest.report [--doc docs/backtest.md] [--crash-dir DIR]

rewrites, in place, every block of the document between ``<!-- generated:NAME -->`` and
``<!-- /generated:NAME -->`` and the charts under ``docs/backtest/``; the prose around the
blocks is the report's own. ``--crash-dir`` is a folder holding the two Deribit chains of
2026-02-04/05 (:mod:`portmargin.backtest.crash`); without it the crash block is left as it
is. Every figure comes from the shipped history, the shipped models and the calibrated
override files in ``portmargin/var/calibrated/``.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Callable, Sequence
from datetime import date
from importlib import resources
from pathlib import Path

from portmargin.backtest.calibrate import Calibration, calibrate
from portmargin.backtest.methods import resolve_methods
from portmargin.backtest.plot import backtest_chart
from portmargin.backtest.runner import BacktestResult, ModelBacktest, run_backtest
from portmargin.backtest.strategies import strategy
from portmargin.methods import Method
from portmargin.models import load_model
from portmargin.var.history import History, shipped_history

__all__ = ["CALIBRATED", "calibrated_file", "main", "replace_blocks"]

START = date(2022, 1, 1)  # the first day every model can margin (var: 250 days + burn-in)
END = date(2026, 3, 14)  # the last day with t + 2 in the history
HORIZON = 2
TENOR = 30
MAIN_STRATEGIES = (
    "short-straddle",
    "short-strangle",
    "put-spread",
    "covered-call",
    "iron-condor",
    "risk-reversal",
    "delta-hedged-short-gamma",
)
SHIPPED = ("deribit", "span16", "tims", "var")
VARIANTS = ("var", "var-hs", "var-mc", "var-bootstrap", "var-apc", "var-buffer")
CALIBRATED = ("span", "span16", "tims")
CAL_STRATEGIES = ("short-put", "short-strangle", "short-straddle", "put-spread")
_BLOCK = re.compile(
    r"(<!-- generated:(?P<name>[a-z0-9-]+) -->\n)(.*?)(<!-- /generated:(?P=name) -->)", re.S
)


def calibrated_file(model: str) -> Path:
    """The shipped calibrated override file of ``model`` (``span16-calibrated.toml``)."""
    return Path(
        str(resources.files("portmargin.var").joinpath("calibrated", f"{model}-calibrated.toml"))
    )


def replace_blocks(text: str, blocks: dict[str, str]) -> str:
    """``text`` with the body of each ``generated:NAME`` block replaced by ``blocks[NAME]``."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        if name not in blocks:
            return m.group(0)
        return f"{m.group(1)}{blocks[name].rstrip()}\n{m.group(4)}"

    return _BLOCK.sub(sub, text)


def _table(results: Sequence[tuple[str, BacktestResult]]) -> str:
    head = (
        "| book | model | days | exc. | coverage | Kupiec p | Christ. p | zone | mean IM (USD) "
        "| IM / notional | peak/trough | worst exceedance (loss / IM, USD) |\n"
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|\n"
    )
    rows = []
    for label, res in results:
        for m in res.models:
            rows.append(_row(label, m))
    return head + "\n".join(rows) + "\n"


def _row(label: str, m: ModelBacktest) -> str:
    s = m.stats
    worst = m.worst(1)
    w = f"{worst[0].day}: {worst[0].loss:,.0f} / {worst[0].margin:,.0f}" if worst else "-"
    return (
        f"| {label} | {m.model} | {s.days} | {s.exceedances} | {s.coverage:.2%} | "
        f"{s.kupiec_pvalue:.3f} | {s.christoffersen_pvalue:.3f} | {s.zone} | "
        f"{m.mean_margin:,.0f} | {m.mean_margin_of_notional:.1%} | {m.peak_to_trough:.2f} | {w} |"
    )


def _run(
    name: str, und: str, methods: Sequence[tuple[str, Method]], hist: History
) -> BacktestResult:
    return run_backtest(
        strategy(name),
        [und],
        methods,
        history=hist,
        start=START,
        end=END,
        horizon_days=HORIZON,
        tenor_days=TENOR,
    )


def _calibration_table(cals: Sequence[Calibration]) -> str:
    out = [
        "| model | underlying | key | shipped | calibrated |",
        "|---|---|---|---:|---:|",
    ]
    for cal in cals:
        for und, keys in cal.values.items():
            for key, value in keys.items():
                out.append(
                    f"| {cal.model} | {und} | `{key}` | {cal.shipped[und][key]:g} | {value:g} |"
                )
    ev = [
        "",
        "| underlying | factor | long look-back low / high | EWMA low / high (σ per day) "
        "| stress window low / high | down | up |",
        "|---|---|---|---|---|---:|---:|",
    ]
    seen: set[tuple[str, str]] = set()
    for cal in cals:
        for e in cal.evidence:
            if (e.underlying, e.factor) in seen:
                continue
            seen.add((e.underlying, e.factor))
            ev.append(
                f"| {e.underlying} | {e.factor} | {e.long.low:+.3f} / {e.long.high:+.3f} "
                f"({e.long.start} to {e.long.end}) | {e.ewma.low:+.3f} / {e.ewma.high:+.3f} "
                f"({e.sigma_forecast:.4f}) | {e.stress.low:+.3f} / {e.stress.high:+.3f} "
                f"({e.stress.start} to {e.stress.end}) | {e.down:.1%} | {e.up:.1%} |"
            )
    return "\n".join(out + ev) + "\n"


def _crash_block(crash_dir: Path, hist: History) -> str:
    from portmargin.backtest.crash import crash_books, crash_coverage, load_chains

    before, after = load_chains(crash_dir)
    books = crash_books(before, after)
    pre = {m: calibrate(m, hist, as_of=date(2026, 2, 3)) for m in CALIBRATED}
    tmp = Path(crash_dir.name + ".precrash")  # written next to the cwd, removed below
    methods = resolve_methods(["deribit", *CALIBRATED, "var"], hist)
    files: list[Path] = []
    try:
        for m in CALIBRATED:
            methods.append((f"{m} calibrated", load_model(m, params_file=str(calibrated_file(m)))))
        for m, cal in pre.items():
            from portmargin.backtest.calibrate import write_calibration

            path = Path(f"{tmp}-{m}.toml")
            write_calibration(cal, path, source=hist.source)
            files.append(path)
            methods.append((f"{m} calibrated to 2026-02-03", load_model(m, params_file=str(path))))
        rows = crash_coverage(methods, before, after, books)
    finally:
        for f in files:
            f.unlink(missing_ok=True)
    fams = list(dict.fromkeys(r.family for r in rows))
    labels = list(dict.fromkeys(r.model for r in rows))
    by = {(r.model, r.family): r for r in rows}
    head = "| model | " + " | ".join(fams) + " | all |\n|---|" + "---:|" * (len(fams) + 1) + "\n"
    lines = []
    for lab in labels:
        cells = []
        tot_l = tot_u = 0
        for fam in fams:
            r = by[(lab, fam)]
            tot_l += r.losing
            tot_u += r.under
            cells.append(f"{r.losing - r.under}/{r.losing} ({1 - r.share:.0%})")
        cells.append(f"{tot_l - tot_u}/{tot_l} ({(tot_l - tot_u) / max(tot_l, 1):.0%})")
        lines.append(f"| {lab} | " + " | ".join(cells) + " |")
    note = (
        f"\n{len(books)} books on options listed in both snapshots; each cell: losing books "
        "covered by their initial margin / losing books (share covered).\n"
    )
    return head + "\n".join(lines) + "\n" + note


def build_blocks(
    *, crash_dir: Path | None, figures: Path, log: Callable[[str], None]
) -> dict[str, str]:
    """Every generated block of the report (and the charts under ``figures``)."""
    hist = shipped_history()
    blocks: dict[str, str] = {}
    t0 = time.perf_counter()
    shipped = resolve_methods(list(SHIPPED), hist)
    results: list[tuple[str, BacktestResult]] = []
    figures.mkdir(parents=True, exist_ok=True)
    for name in MAIN_STRATEGIES:
        for und in ("BTC", "ETH"):
            res = _run(name, und, shipped, hist)
            results.append((f"{name} {und}", res))
            if (name, und) in (("short-strangle", "BTC"), ("put-spread", "ETH")):
                backtest_chart(res, figures / f"{name}-{und}.png", dpi=72)
            log(f"{name} {und}: {time.perf_counter() - t0:.0f} s")
    blocks["main"] = _table(results)
    variants = resolve_methods(list(VARIANTS), hist)
    vres = []
    for name in ("short-strangle", "short-put"):
        for und in ("BTC", "ETH"):
            vres.append((f"{name} {und}", _run(name, und, variants, hist)))
            log(f"variants {name} {und}: {time.perf_counter() - t0:.0f} s")
    blocks["variants"] = _table(vres)
    cals = [calibrate(m, hist) for m in CALIBRATED]
    blocks["calibration"] = _calibration_table(cals)
    cres = []
    for name in CAL_STRATEGIES:
        for und in ("BTC", "ETH"):
            methods: list[tuple[str, Method]] = []
            for m in CALIBRATED:
                methods.append((m, load_model(m)))
                methods.append(
                    (f"{m} calibrated", load_model(m, params_file=str(calibrated_file(m))))
                )
            cres.append((f"{name} {und}", _run(name, und, methods, hist)))
            log(f"calibrated {name} {und}: {time.perf_counter() - t0:.0f} s")
    blocks["calibrated-backtest"] = _table(cres)
    if crash_dir is not None:
        blocks["crash"] = _crash_block(crash_dir, hist)
        log(f"crash: {time.perf_counter() - t0:.0f} s")
    blocks["stamp"] = (
        f"Generated by `python -m portmargin.backtest.report` from {hist.source} "
        f"({hist.first} to {hist.last}); {START} to {END}, horizon {HORIZON} days, "
        f"tenor {TENOR} days, size 1 contract per leg unit, requirement = initial margin.\n"
    )
    return blocks


def main(argv: list[str] | None = None) -> int:
    """``python -m portmargin.backtest.report [--doc FILE] [--crash-dir DIR]``."""
    p = argparse.ArgumentParser(prog="python -m portmargin.backtest.report")
    p.add_argument("--doc", type=Path, default=Path("docs/backtest.md"))
    p.add_argument("--crash-dir", type=Path, default=None)
    args = p.parse_args(argv)
    doc: Path = args.doc
    text = doc.read_text(encoding="utf-8")
    blocks = build_blocks(
        crash_dir=args.crash_dir,
        figures=doc.parent / "backtest",
        log=lambda s: print(s, file=sys.stderr, flush=True),
    )
    doc.write_text(replace_blocks(text, blocks), encoding="utf-8")
    print(f"{doc}: {len(blocks)} blocks rewritten", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
