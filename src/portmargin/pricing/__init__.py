"""Vectorised option pricing: Black-76 on forwards and its implied-volatility inverse.

The risk arrays run a compiled kernel where numba is installed (:func:`kernel`); the NumPy
functions here stay the reference, and :func:`use_kernel` selects either.
"""

from portmargin.pricing._compiled import kernel, use_kernel
from portmargin.pricing.black76 import (
    Greeks,
    black76_delta,
    black76_gamma,
    black76_greeks,
    black76_price,
    black76_theta,
    black76_vega,
)
from portmargin.pricing.implied_vol import implied_vol

__all__ = [
    "Greeks",
    "black76_delta",
    "black76_gamma",
    "black76_greeks",
    "black76_price",
    "black76_theta",
    "black76_vega",
    "implied_vol",
    "kernel",
    "use_kernel",
]
