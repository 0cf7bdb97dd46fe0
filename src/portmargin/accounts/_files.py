"""The accounts file, read by :mod:`portmargin.io.accounts_files` (re-exported here).

Every file format of the package lives in :mod:`portmargin.io`; this module keeps the
``portmargin.accounts`` names (``load_accounts``, ``accounts_from_dict``) working.
"""

from __future__ import annotations

from portmargin.io.accounts_files import accounts_from_dict, load_accounts

__all__ = ["accounts_from_dict", "load_accounts"]
