"""Factories: how a pip-services container builds our components from descriptors.

A container reads ``descriptor: "pip-services:message-queue:mqtt:orders:1.0"`` from
its configuration and asks every registered factory ``can_create(locator)``, then
``create(locator)``. Locators are matched with wildcards, ours or pip-services'
descriptors alike (compared through ``str()``, as in `References`). The descriptors
are upstream's, so a container configuration written for the Node or Python port
builds these components unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

import attrs

from ._config import ConfigParams
from ._connection import MqttConnection
from ._exceptions import ConfigError
from ._queue import MqttMessageQueue
from ._references import Descriptor, ReferencesLike, as_descriptor

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

__all__ = ["DefaultMqttFactory", "MqttMessageQueueFactory"]

_QUEUE: Final = Descriptor("pip-services", "message-queue", "mqtt", "*", "1.0")
_CONNECTION: Final = Descriptor("pip-services", "connection", "mqtt", "*", "1.0")
_QUEUE_FACTORY: Final = Descriptor("pip-services", "queue-factory", "mqtt", "*", "1.0")


def _name_of(locator: object) -> str | None:
    descriptor = as_descriptor(locator)
    return None if descriptor is None else descriptor.name


def _find(
    registrations: tuple[tuple[Descriptor, Callable[[object], object]], ...],
    locator: object,
) -> tuple[Descriptor, Callable[[object], object]] | None:
    wanted = as_descriptor(locator)
    if wanted is None:
        return None
    for registered, create in registrations:
        if registered.match(wanted):
            return registered, create
    return None


def _cannot_create(locator: object) -> ConfigError:
    # pip-services' CreateException code and text.
    return ConfigError(f"Failed to create object for {locator}", code="CANNOT_CREATE")


@final
@attrs.define(eq=False)
class MqttMessageQueueFactory:
    """Creates `MqttMessageQueue` components, named after their descriptor.

    Registered descriptor: ``pip-services:message-queue:mqtt:*:1.0``. Queues made by
    `create_queue` get the factory's configuration and references, as upstream's
    ``MessageQueueFactory`` does.
    """

    _config: ConfigParams | None = attrs.field(default=None, init=False, repr=False)
    _references: ReferencesLike | None = attrs.field(
        default=None, init=False, repr=False
    )

    def configure(self, config: Mapping[str, object]) -> None:
        """Keep the configuration for the queues this factory makes.

        Args:
            config: queue and connection keys.
        """
        self._config = ConfigParams.of(config)

    def set_references(self, references: ReferencesLike | None) -> None:
        """Keep the references for the queues this factory makes.

        Args:
            references: our `References` or a pip-services ``IReferences``.
        """
        self._references = references

    def can_create(self, locator: object) -> object | None:
        """Return the registered descriptor that matches ``locator``, or None.

        Args:
            locator: a descriptor, ours or pip-services'.
        """
        found = _find(((_QUEUE, self._create),), locator)
        return None if found is None else found[0]

    def create(self, locator: object) -> object:
        """Create the queue ``locator`` describes (its name is the descriptor's).

        Args:
            locator: a descriptor, ours or pip-services'.

        Raises:
            ConfigError: code ``CANNOT_CREATE``: the locator is not a queue's.
        """
        found = _find(((_QUEUE, self._create),), locator)
        if found is None:
            raise _cannot_create(locator)
        return found[1](locator)

    def _create(self, locator: object) -> object:
        return self.create_queue(_name_of(locator))

    def create_queue(self, name: str | None) -> MqttMessageQueue:
        """Create a queue, configured and referenced as this factory is.

        Args:
            name: the queue name.
        """
        queue = MqttMessageQueue(name)
        if self._config is not None:
            queue.configure(self._config)
        if self._references is not None:
            queue.set_references(self._references)
        return queue


@final
@attrs.define(eq=False)
class DefaultMqttFactory:
    """Creates every MQTT component by its upstream descriptor.

    - ``pip-services:message-queue:mqtt:*:1.0``: `MqttMessageQueue`, named after
      the descriptor;
    - ``pip-services:connection:mqtt:*:1.0``: `MqttConnection`;
    - ``pip-services:queue-factory:mqtt:*:1.0``: `MqttMessageQueueFactory`.

    Components come unconfigured, as from upstream: the container configures,
    references and opens them.
    """

    def _registrations(
        self,
    ) -> tuple[tuple[Descriptor, Callable[[object], object]], ...]:
        return (
            (_QUEUE, lambda locator: MqttMessageQueue(_name_of(locator))),
            (_CONNECTION, lambda _: MqttConnection()),
            (_QUEUE_FACTORY, lambda _: MqttMessageQueueFactory()),
        )

    def can_create(self, locator: object) -> object | None:
        """Return the registered descriptor that matches ``locator``, or None.

        Args:
            locator: a descriptor, ours or pip-services'.
        """
        found = _find(self._registrations(), locator)
        return None if found is None else found[0]

    def create(self, locator: object) -> object:
        """Create the component ``locator`` describes.

        Args:
            locator: a descriptor, ours or pip-services'.

        Raises:
            ConfigError: code ``CANNOT_CREATE``: no registered descriptor matches.
        """
        found = _find(self._registrations(), locator)
        if found is None:
            raise _cannot_create(locator)
        return found[1](locator)
