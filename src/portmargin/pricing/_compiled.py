r"""Compiled kernels (numba): the risk-array revaluation and sparse products, multi-threaded.

Every kernel here has a NumPy/SciPy reference that stays the definition (the risk arrays'
:func:`portmargin.risk.risk_array`, SciPy's CSR product); the kernels do the same floating
point operations in the same order on each element, so they agree to the last few ulp
(tested to 1e-12 relative; the only difference is ``erf``/``erfc`` of the C library
against SciPy's Cephes ones inside ``N(x)``). The sparse product is bit for bit SciPy's:
each output row sums its entries in stored order, as ``csr_matvecs`` does.

Which path runs is :func:`kernel` (``"numba"`` when numba imports, else ``"numpy"``); the
environment variable ``PORTMARGIN_KERNEL=numpy`` (or :func:`use_kernel`) forces the reference.
Kernels are compiled on first use and cached on disk (numba ``cache=True``, beside this
module or in ``NUMBA_CACHE_DIR``); where no cache directory is writable they are compiled
in memory each process (numba then raises at decoration, which is caught here).

Formulas (as :mod:`portmargin.pricing.black76` and :mod:`portmargin.risk`)::

    N(x) = ½·erfc(−x/√2)                    (Cephes' split at |x|/√2 = 1/√2, as SciPy's ndtr)
    d1 = ln(F/K)/(σ√T) + σ√T/2,  d2 = d1 − σ√T
    B76 = D·max(F·N(d1) − K·N(d2), 0) (call),  D·max(K·N(−d2) − F·N(−d1), 0) (put)
          D·max(±(F − K), 0) where T ≤ 0, σ√T ≤ 0, F ≤ 0 or K ≤ 0
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from portmargin._types import FloatArray

if TYPE_CHECKING:
    from portmargin.risk import InstrumentTable
    from portmargin.scenarios import ScenarioSet

__all__ = [
    "AVAILABLE",
    "Kernel",
    "csr_dense_product",
    "in_threads",
    "kernel",
    "risk_pnl",
    "threads",
    "use_kernel",
    "warm_up",
]

Kernel = Literal["numba", "numpy"]
T = TypeVar("T")

# numba is a dependency, but the reference path must work without it; it is imported only
# when a kernel first runs (importing it costs ~0.3 s, which a CLI start does not pay).
AVAILABLE = importlib.util.find_spec("numba") is not None

_forced: list[Kernel] = []  # use_kernel's stack (process-wide: kernels run in threads too)
_ENV = "PORTMARGIN_KERNEL"


def kernel() -> Kernel:
    """The kernel in use: :func:`use_kernel`'s, else ``PORTMARGIN_KERNEL``, else numba."""
    if _forced:
        return _forced[-1]
    env = os.environ.get(_ENV, "").strip().lower()
    if env == "numpy" or not AVAILABLE:
        return "numpy"
    return "numba"


@contextlib.contextmanager
def use_kernel(name: Kernel) -> Iterator[None]:
    """Run a block with the ``"numpy"`` reference or the ``"numba"`` kernels (process-wide)."""
    if name not in ("numba", "numpy"):
        raise ValueError(f"kernel {name!r}: use 'numba' or 'numpy'")
    if name == "numba" and not AVAILABLE:
        raise RuntimeError("numba is not installed")
    _forced.append(name)
    try:
        yield
    finally:
        _forced.pop()


PARALLEL_MIN_WORK = 20_000
"""Below this many evaluations (risk array: rows × scenarios; product: entries × columns) a
kernel runs on the calling thread: launching numba's parallel region costs more than it
saves there, and concurrent small calls (the service's what-ifs, one per request thread)
would queue on the shared thread pool."""


def threads() -> int:
    """Threads that margin account chunks side by side.

    ``PORTMARGIN_THREADS`` (a whole number ≥ 1) when set, else the cores this process may run
    on (``os.sched_getaffinity``, or ``os.cpu_count()`` where that does not exist). Chunk
    threads won over the kernels' own row-parallel threads on the 2-core machine of
    BENCHMARKS.md (h): 100,000 accounts in 115 ms against 141 ms on one thread, where the
    row-parallel products gained nothing (139 ms). Dask workers set it to 1 (the worker
    processes are the parallelism).

    Raises
    ------
    ValueError
        If ``PORTMARGIN_THREADS`` is not a whole number ≥ 1.
    """
    env = os.environ.get("PORTMARGIN_THREADS", "").strip()
    if not env:
        affinity = getattr(os, "sched_getaffinity", None)
        return max(1, len(affinity(0)) if affinity is not None else (os.cpu_count() or 1))
    if not env.isdigit() or int(env) < 1:
        raise ValueError(f"PORTMARGIN_THREADS={env!r}: expected a whole number >= 1")
    return int(env)


def in_threads(fn: Callable[[int], T], n: int) -> list[T]:
    """``[fn(0), ..., fn(n − 1)]``, on :func:`threads` threads when there are several items.

    The items (account chunks) are independent; each thread runs the compiled kernels on
    one numba thread (the chunks are the parallelism), and NumPy and the kernels release
    the GIL, so the threads overlap. The result is in item order, the same as in a loop.
    """
    workers = min(threads(), n)
    if workers <= 1:
        return [fn(i) for i in range(n)]
    from concurrent.futures import ThreadPoolExecutor

    def run(i: int) -> T:
        _one_kernel_thread()
        return fn(i)

    with ThreadPoolExecutor(workers, thread_name_prefix="portmargin") as pool:
        return list(pool.map(run, range(n)))


def _one_kernel_thread() -> None:
    """Kernels called from this thread run on one thread (numba's setting is per thread)."""
    if AVAILABLE and kernel() == "numba":
        import numba

        numba.set_num_threads(1)


def _kernels() -> Any:
    """The compiled kernels' module (numba is imported here, on first use only).

    OpenMP threads wait passively between parallel regions unless told otherwise: spinning
    workers on a shared, loaded machine turn a 15 µs region launch into milliseconds (the
    barrier waits for a descheduled spinner).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from portmargin.pricing import _jit

    return _jit


def risk_pnl(
    table: InstrumentTable,
    scenarios: ScenarioSet,
    v0: FloatArray,
    *,
    parallel: bool | None = None,
) -> tuple[FloatArray, FloatArray]:
    r"""``(pnl_settle, pnl_usd)`` of a risk array in one pass (:mod:`portmargin.risk`'s formulas).

    Per row ``i`` and scenario ``j``, with ``m_ij = scale_i·m_j`` (price-range tiers) and
    ``σ_ij`` the vol shock of :meth:`VolShock.shocked <portmargin.scenarios.VolShock.shocked>`
    (``max(σ(1 + v_j·up·k_i), floor_up)`` for ``v_j > 0``, ``down`` and its floor for
    ``v_j < 0``, ``σ`` else; additive in absolute mode)::

        option    V_ij = M·B76(F(1+m)e^{−c·min(τ,T)}, K, max(T−τ, 0), σ_ij, df^{T'/T})
                  usd = V_ij − v0_i,  coin = V_ij/(F(1+m)) − v0_i/F
        delta-1   usd = M·F·m,        coin = M·(1 − 1/(1+m))
        settled   0

    ``pnl_settle`` is the coin figure for inverse rows, else the USD one; ``v0`` is the
    base value per row (USD). Rows run in parallel from :data:`PARALLEL_MIN_WORK`
    evaluations on (``parallel`` forces one kernel or the other).
    """
    from portmargin.scenarios import VolShockMode

    opt = table.is_option
    dte = table.T * 365.0
    shock = scenarios.vol_shock
    n, s = len(table.instruments), len(scenarios)
    out_settle = np.empty((n, s))
    out_usd = np.empty((n, s))
    k = _kernels()
    if parallel is None:
        parallel = n * s >= PARALLEL_MIN_WORK
    kernel_fn = k.risk_pnl if parallel else k.risk_pnl_serial
    kernel_fn(
        table.F,
        np.where(opt, table.K, 1.0),
        np.where(opt, table.T, 0.0),
        np.where(opt, table.df, 1.0),
        np.where(opt, table.carry, 0.0),
        opt,
        table.is_call,
        table.inverse,
        table.multiplier,
        np.ascontiguousarray(v0, dtype=np.float64),
        table.settled,
        np.ascontiguousarray(scenarios.move_scale(dte, table.expiry_group > 0), np.float64),
        scenarios.price_moves,
        table.sigma,
        np.ascontiguousarray(shock.scale(dte), dtype=np.float64),
        scenarios.vol_directions,
        shock.mode is VolShockMode.RELATIVE,
        float(shock.up),
        float(shock.down),
        float(shock.min_vol_up),
        float(shock.min_vol),
        float(scenarios.lookahead_years),
        out_settle,
        out_usd,
    )
    return out_settle, out_usd


def csr_dense_product(
    indptr: npt.NDArray[np.integer[Any]],
    indices: npt.NDArray[np.integer[Any]],
    data: FloatArray,
    w: FloatArray,
    *,
    parallel: bool | None = None,
) -> FloatArray:
    """``Q @ W`` for CSR ``Q`` and C-contiguous dense ``W``, rows in parallel.

    Row ``i`` is ``Σ_e data[e]·W[indices[e], :]`` over its entries in stored order, exactly
    SciPy's ``csr_matvecs``, so the result is bit for bit the same.
    """
    n = indptr.shape[0] - 1
    out = np.empty((n, w.shape[1]))
    k = _kernels()
    if parallel is None:
        parallel = data.shape[0] * w.shape[1] >= PARALLEL_MIN_WORK
    kernel_fn = k.csr_dense if parallel else k.csr_dense_serial
    kernel_fn(indptr, indices, data, np.ascontiguousarray(w), out)
    return out


def warm_up() -> float:
    """Compile (or load from the cache) every kernel on tiny inputs; the seconds it took."""
    import time

    t0 = time.perf_counter()
    if AVAILABLE:
        import portmargin as pm
        from portmargin.risk import instrument_table

        market = pm.demo_market()
        model = pm.load_model("deribit")
        table = instrument_table([market.instrument("BTC-PERPETUAL")], market)
        for parallel in (True, False):
            risk_pnl(table, model.scenario_set("BTC"), table.value_usd, parallel=parallel)
            csr_dense_product(
                np.array([0, 1], dtype=np.int64),
                np.array([0], dtype=np.int64),
                np.ones(1),
                np.ones((1, 2)),
                parallel=parallel,
            )
    return time.perf_counter() - t0
