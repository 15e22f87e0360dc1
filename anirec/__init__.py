"""anirec: anime recommendations from sentence embedders fine-tuned on MyAnimeList co-ratings."""

__version__ = "0.1.0"
