"""Recommenders behind one interface (:mod:`.base`), one file per method, and their registry.

Adding a method: write ``anirec/recommenders/NAME.py`` with a :class:`~.base.Recommender`
subclass, add one line to ``REGISTRY``; it then works in `anirec evaluate` (``[[methods]]``
in a config), `anirec fit` and `anirec recommend --recommender`.
"""

from __future__ import annotations

from ..errors import AnirecError
from .base import Params, Recommender, top_k_ordered
from .ease import EASERecommender
from .hybrid import HybridRecommender
from .itemknn import ItemKNNRecommender
from .simple import PopularRecommender, RandomRecommender
from .text import TextRecommender

REGISTRY: dict[str, type[Recommender]] = {
    "random": RandomRecommender,
    "popular": PopularRecommender,
    "itemknn": ItemKNNRecommender,
    "ease": EASERecommender,
    "text": TextRecommender,
    "hybrid": HybridRecommender,
}


def method_class(name: str, where: str = "method") -> type[Recommender]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AnirecError(f"{where}: unknown method {name!r}; choose from {', '.join(REGISTRY)}.") from None


def make(name: str, params: dict | None = None, where: str = "method", **context) -> Recommender:
    """A recommender by registry name, with its parameters checked (names and types)."""
    cls = method_class(name, where)
    return cls(cls.Params.from_dict(dict(params or {}), where), **context)


__all__ = ["REGISTRY", "Params", "Recommender", "make", "method_class", "top_k_ordered"]
