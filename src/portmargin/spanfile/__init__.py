r"""SPAN risk-parameter files: read them, margin on their published arrays, recompute them.

* :func:`load_span_file` reads a SPAN 4 XML file (``.spn``, root ``<spanFile>``) or an
  expanded positional file (``.pa2``, first record ``0`` with format ``U2``), told apart by
  their content, into a :class:`SpanFile` (:mod:`portmargin.spanfile.model`; instrument names
  ``EXCH:PRODUCT:TYPE:PERIOD[:C|P:STRIKE]``).
* :func:`span_margin` / :class:`SpanFileMethod` margin a portfolio on the file's published
  risk arrays, composite deltas, spreads and short option minimum, as SPAN software does, and
  return the one result family :class:`~portmargin.models.result.MarginResult`
  (:mod:`portmargin.spanfile.margin`). Importing this package registers the method
  ``spanfile`` (``portmargin.methods.load_method("spanfile", params_file="file.spn")``).
* :func:`recompute_arrays` recomputes the arrays from the file's own pricing inputs with
  portmargin's revaluation kernel and reports the largest difference
  (:mod:`portmargin.spanfile.recompute`).

Every problem with a file is one :class:`~portmargin.errors.InputError` line naming the file,
the record or element, and the reason. Documentation: ``docs/methodology/span-files.md``.
"""

from __future__ import annotations

from pathlib import Path

from portmargin.errors import InputError, ParameterError
from portmargin.methods import Method, MethodInfo, register_method
from portmargin.spanfile.margin import METHOD_NAME, SpanFileMethod, span_margin
from portmargin.spanfile.model import (
    CombinedCommodity,
    Contract,
    SpanFile,
    Spread,
    SpreadLeg,
    Tier,
    contract_name,
)
from portmargin.spanfile.pa2 import read_pa2
from portmargin.spanfile.recompute import ArrayCheck, RecomputeReport, recompute_arrays
from portmargin.spanfile.xml import read_xml

__all__ = [
    "ArrayCheck",
    "CombinedCommodity",
    "Contract",
    "RecomputeReport",
    "SpanFile",
    "SpanFileMethod",
    "Spread",
    "SpreadLeg",
    "Tier",
    "contract_name",
    "load_span_file",
    "read_pa2",
    "read_xml",
    "recompute_arrays",
    "span_margin",
]


def load_span_file(path: str | Path) -> SpanFile:
    """Read a SPAN file, XML or expanded positional, told apart by its first bytes.

    Raises
    ------
    InputError
        For an unreadable file, a format that is neither, or any problem inside (one line).
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"<"):
        return read_xml(p)
    if text[:1] == b"0":
        return read_pa2(p)
    raise InputError(
        f"{p}: not a SPAN file (expected SPAN 4 XML starting with '<' or an expanded positional "
        "file whose first record is type 0)"
    )


def _load(params_file: str | None, cross: bool | None) -> Method:  # noqa: FBT001
    """The method registry's loader: ``params_file`` is the SPAN file."""
    if cross:
        raise ParameterError(
            f"{METHOD_NAME}: --cross does not apply (SPAN margins per currency as the file says)"
        )
    if params_file is None:
        raise ParameterError(f"{METHOD_NAME}: give the SPAN file with --params FILE (.spn or .pa2)")
    return SpanFileMethod.load(params_file)


INFO = MethodInfo(
    METHOD_NAME,
    "portfolio",
    "SPAN on a clearing house's risk-parameter file (--params FILE.spn|.pa2): published arrays",
)
"""How the method is listed (``portmargin models``)."""

register_method(INFO, _load)
