"""digest: a self-hosted daily email of the newest trending research papers, per reader."""

__version__ = "0.1.0"

__all__ = ["__version__"]
