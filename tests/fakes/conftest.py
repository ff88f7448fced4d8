from .fixtures import fake_together, fake_together_factory

__all__ = ["fake_together", "fake_together_factory"]
