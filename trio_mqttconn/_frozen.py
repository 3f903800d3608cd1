"""Building frozen attrs instances on hot paths without their ``__init__``.

attrs's ``__init__`` of a frozen class sets each field with ``object.__setattr__``
called as a bound method: about 110 ns a field, more than decoding a small PUBLISH
costs. Where the values were checked already (the decoder's output, a received
message), the fields are instead stored with plain slot assignments on an instance
of an *unfrozen twin*: a subclass that adds no slots and leaves out the frozen
``__setattr__``. The instance then becomes the real class by a ``__class__``
assignment between identical layouts, and is from there on an ordinary, frozen
instance of it (equality, hashing, repr, pickling and ``attrs.evolve`` included)::

    message = object.__new__(_UNFROZEN_MESSAGE)
    message.topic = topic
    ...
    message.__class__ = Message
"""

from __future__ import annotations

from typing import Any

__all__ = ["unfrozen_twin"]


def unfrozen_twin(cls: type[Any]) -> type[Any]:
    """The unfrozen twin of *cls*, a frozen attrs class with ``slots=True``."""
    if "__slots__" not in cls.__dict__:
        raise TypeError(
            f"{cls.__qualname__} is not slotted: no twin can share its layout"
        )
    return type(
        f"_Unfrozen{cls.__name__}",
        (cls,),
        {
            "__slots__": (),
            "__module__": cls.__module__,
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
        },
    )
