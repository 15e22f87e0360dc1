"""``python -m anirec`` (also what torchrun / accelerate launch run)."""

from .cli import main

if __name__ == "__main__":
    main()
