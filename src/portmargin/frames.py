"""Results as DataFrames (polars, or pandas when asked) and as HTML tables for Jupyter.

:func:`to_frame` turns any result of the package into a DataFrame, one row per pool,
position, scenario, regime or (account, pool)::

    MarginResult     kind="pools" (default), "positions" or "scenarios"
    AccountMargin    one row per pool (equity after haircuts, status)
    WhatIf           one row per (side, pool): before and after
    Comparison       one row per regime (standard, strategy, portfolio), USD
    BatchResult      one row per (account, pool present); ``accounts`` names the rows
    pyarrow.Table    as is (``portmargin batch`` output, ``batch.result_table``)

:func:`html_table` renders the same rows as an HTML table (``_repr_html_``). Neither polars
nor pandas is imported until a frame is asked for.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, Literal

from portmargin.errors import InputError

__all__ = ["Backend", "html_table", "records", "to_frame"]

Backend = Literal["polars", "pandas"]


def _pool_rows(pools: Sequence[Any], **extra: Any) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {k: [] for k in extra}
    for name in ("currency", "initial_margin", "maintenance_margin", "equity"):
        cols[name] = []
    cols["initial_excess"] = []
    cols["maintenance_excess"] = []
    cols["usd_rate"] = []
    for p in pools:
        for k, v in extra.items():
            cols[k].append(v)
        cols["currency"].append(p.currency)
        cols["initial_margin"].append(float(p.initial_margin))
        cols["maintenance_margin"].append(float(p.maintenance_margin))
        cols["equity"].append(float(p.equity))
        cols["initial_excess"].append(float(p.equity - p.initial_margin))
        cols["maintenance_excess"].append(float(p.equity - p.maintenance_margin))
        cols["usd_rate"].append(float(p.usd_rate))
    return cols


def _from_dicts(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {}
    for row in rows:
        for k in row:
            cols.setdefault(k, [])
    for row in rows:
        for k in cols:
            cols[k].append(row.get(k))
    return cols


def records(
    obj: object, *, kind: str = "pools", accounts: Sequence[str] | None = None
) -> dict[str, list[Any]]:
    """The columns of ``obj``'s frame (column name → values); see the module docstring.

    Raises
    ------
    InputError
        For an object or ``kind`` this module does not know.
    """
    from portmargin.accounts import AccountMargin, WhatIf
    from portmargin.compare import Comparison
    from portmargin.models.result import MarginResult
    from portmargin.models.session import BatchResult

    if isinstance(obj, MarginResult):
        if kind == "pools":
            return _pool_rows(obj.by_currency, model=obj.model)
        if kind == "positions":
            return _from_dicts([p.to_dict() for p in obj.positions])
        if kind == "scenarios":
            return _from_dicts([s.to_dict() for s in obj.scenarios])
        raise InputError(f"to_frame: kind {kind!r}: use pools, positions or scenarios")
    if isinstance(obj, AccountMargin):
        return _from_dicts([{"account": obj.account_id, **p.to_dict()} for p in obj.pools])
    if isinstance(obj, WhatIf):
        rows = [{"side": "before", **p.to_dict()} for p in obj.before.pools]
        rows += [{"side": "after", **p.to_dict()} for p in obj.after.pools]
        return _from_dicts(rows)
    if isinstance(obj, Comparison):
        return _from_dicts(
            [
                {"regime": r.regime, **r.to_dict()}
                for r in (obj.standard, obj.strategy, obj.portfolio)
            ]
        )
    if isinstance(obj, BatchResult):
        import numpy as np

        a_idx, p_idx = np.nonzero(obj.present)
        names = list(accounts) if accounts is not None else [str(i) for i in range(len(obj))]
        if len(names) != len(obj):
            raise InputError(f"to_frame: {len(names)} account names for {len(obj)} accounts")
        im = obj.initial_margin[a_idx, p_idx]
        mm = obj.maintenance_margin[a_idx, p_idx]
        eq = obj.equity[a_idx, p_idx]
        return {
            "account": [names[i] for i in a_idx.tolist()],
            "currency": [obj.pools[p] for p in p_idx.tolist()],
            "initial_margin": im.tolist(),
            "maintenance_margin": mm.tolist(),
            "equity": eq.tolist(),
            "excess": (eq - im).tolist(),
            "maintenance_excess": (eq - mm).tolist(),
        }
    if type(obj).__module__.startswith("pyarrow") and hasattr(obj, "to_pydict"):
        out: dict[str, list[Any]] = obj.to_pydict()
        return out
    raise InputError(f"to_frame: cannot convert a {type(obj).__name__}")


def to_frame(
    obj: object,
    *,
    kind: str = "pools",
    accounts: Sequence[str] | None = None,
    backend: Backend = "polars",
) -> Any:
    """``obj`` as a polars (default) or pandas DataFrame; see the module docstring.

    Examples
    --------
    >>> import portmargin as pm
    >>> book = pm.Portfolio.of({"BTC-27MAR26-70000-P": -1}, {"BTC": 0.1})
    >>> df = pm.to_frame(pm.margin(book, pm.demo_market()))
    >>> df.columns[:3]
    ['model', 'currency', 'initial_margin']

    Raises
    ------
    InputError
        For an unknown object, ``kind`` or ``backend``.
    ImportError
        When the backend's package is not installed.
    """
    cols = records(obj, kind=kind, accounts=accounts)
    if backend == "polars":
        import polars as pl

        return pl.DataFrame(cols, strict=False)
    if backend == "pandas":
        import pandas as pd  # type: ignore[import-untyped,import-not-found,unused-ignore]

        return pd.DataFrame(cols)
    raise InputError(f"to_frame: backend {backend!r}: use polars or pandas")


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1 else f"{value:,.2f}"
    return html.escape("" if value is None else str(value))


def html_table(obj: object, *, kind: str = "pools", caption: str | None = None) -> str:
    """``obj``'s rows as an HTML table (what Jupyter shows for ``_repr_html_``)."""
    cols = records(obj, kind=kind)
    names = list(cols)
    n = len(cols[names[0]]) if names else 0
    head = "".join(f"<th>{html.escape(c)}</th>" for c in names)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(cols[c][i])}</td>" for c in names) + "</tr>" for i in range(n)
    )
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
