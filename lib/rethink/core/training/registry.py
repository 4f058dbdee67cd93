"""A table of things by name, filled by a decorator (as USB registers its algorithms): the self-training
algorithms (rethink.core.training.selftrain) and the self-supervised methods (rethink.core.training.selfsup) each keep one."""
from __future__ import annotations


class Registry(dict):
    """name -> registered function or class. `what` names the setting in errors ("method", ...)."""

    def __init__(self, what: str):
        super().__init__()
        self.what = what

    def register(self, name: str):
        def add(obj):
            if name in self:
                raise ValueError(f"{self.what} {name!r} is registered twice")
            self[name] = obj
            return obj
        return add

    def check(self, name: str) -> str:
        """`name` if registered, else a ValueError naming the setting and what is allowed."""
        if name not in self:
            raise ValueError(f"{self.what} must be one of {', '.join(self)}; got {name!r}")
        return name
