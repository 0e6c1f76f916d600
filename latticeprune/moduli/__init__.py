"""Moduli regularisation core: spaces, inhibitors and the penalty (no skorch).

Hidden units are embedded at points of a moduli space; the recurrent weight
between units ``i`` and ``j`` is penalised by ``R[i, j] = f(d(p_i, p_j))``
(``docs/methods/moduli.md`` sections 1-4).  The public names are listed once, in each
module's ``__all__``.
"""

from . import inhibitors, penalty, spaces
from .inhibitors import *  # noqa: F403
from .penalty import *  # noqa: F403
from .spaces import *  # noqa: F403

__all__ = [*spaces.__all__, *inhibitors.__all__, *penalty.__all__]
