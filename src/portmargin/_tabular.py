"""A mixin giving result values ``to_frame()`` and a Jupyter table (:mod:`portmargin.frames`).

The conversion lives in :mod:`portmargin.frames` (polars by default, pandas on request) and is
imported on first use, so results stay light to import.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

__all__ = ["Tabular"]


class Tabular:
    """``to_frame`` and ``_repr_html_`` for a result value (slot-free, for frozen dataclasses)."""

    __slots__ = ()
    _default_kind = "pools"

    def to_frame(
        self,
        kind: str | None = None,
        *,
        accounts: Sequence[str] | None = None,
        backend: Literal["polars", "pandas"] = "polars",
    ) -> Any:
        """The value as a DataFrame (:func:`portmargin.frames.to_frame`)."""
        from portmargin.frames import to_frame

        return to_frame(self, kind=kind or self._default_kind, accounts=accounts, backend=backend)

    def _repr_html_(self) -> str:
        """An HTML table of this value's rows (what Jupyter shows)."""
        from portmargin.frames import html_table

        return html_table(self, kind=self._default_kind)
