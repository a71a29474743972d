"""Name resolution: one string (an archive name, coordinates, a J-name, or a name
Simbad knows) to an ICRS position. The service (:mod:`.service`) has no Flask; the
``/resolve`` JSON endpoint is :mod:`.views`."""
from __future__ import annotations

from .service import Resolution, normalise, resolve

__all__ = ["Resolution", "normalise", "resolve"]
