"""Recommenders behind one interface (:mod:`.base`), one file per method, and their registry.

Adding a method: write ``anirec/recommenders/NAME.py`` with a :class:`~.base.Recommender`
subclass, add one line to ``REGISTRY``; it then works in `anirec evaluate` (``[[methods]]``
in a config), `anirec fit` and `anirec recommend --recommender`.
"""

from __future__ import annotations

from ..config import Seed, coerce, field_types
from ..errors import AnirecError
from .base import Params, Recommender
from .ease import EASERecommender
from .ease_side import CEASERecommender
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
    "cease": CEASERecommender,
}


# What `anirec fit` fits without --method and the demo fits: cEASE beat EASE and the hybrid on
# the validation split of both shared sets on every protocol (eval/results/tune-*/grid.md), and
# on the real protocols (eval/results/mal-*, README).
DEFAULT_METHOD = "cease"


def method_class(name: str, where: str = "method") -> type[Recommender]:
    try:
        return REGISTRY[name]
    except KeyError:
        raise AnirecError(f"{where}: unknown method {name!r}; choose from {', '.join(REGISTRY)}.") from None


def make(name: str, params: dict | None = None, where: str = "method", seed: int | None = None,
         **context) -> Recommender:
    """A recommender by registry name, with its parameters checked (names and types).

    ``seed`` is the run's seed: it becomes the ``seed`` parameter of a method that has one
    (unless ``params`` sets it) and is checked even for methods that draw nothing at random.
    ``context``: cache_dir, batch_size, progress (how to run, never what is computed)."""
    cls = method_class(name, where)
    params = dict(params or {})
    if seed is not None:
        seed = coerce(seed, Seed, f"{where}: seed")
        if "seed" in field_types(cls.Params):
            params.setdefault("seed", seed)
    return cls(cls.Params.from_dict(params, where), **context)


__all__ = ["DEFAULT_METHOD", "REGISTRY", "Params", "Recommender", "make", "method_class"]
