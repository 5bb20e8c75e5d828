"""Trigger kinds as plugins: each is a `Source` registered here by kind.

The built-in kinds register themselves below; a kind defined elsewhere (a test suite, an
extension package) calls `register(MySource)` before its app is declared.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from squall.errors import ConfigError
from squall.sources.base import NodeContext, Source, Trigger

if TYPE_CHECKING:
    from squall.app import App

__all__ = ["NodeContext", "Source", "Trigger", "register", "registered", "source_for", "sources_for"]

_REGISTRY: dict[str, type[Source[Any]]] = {}


def _kind(trigger: type[Trigger]) -> str:
    kind = getattr(trigger, "kind", None)
    if not isinstance(kind, str):
        raise ConfigError(f"trigger {trigger.__name__} declares no kind (kind: ClassVar[str] = ...)")
    return kind


def register(source: type[Source[Any]]) -> type[Source[Any]]:
    """Make a trigger kind known (also usable as a class decorator). Registering the same
    class again, or its new version when its module is loaded again, replaces it; another
    class under a taken kind is an error."""
    if not (isinstance(source, type) and issubclass(source, Source)):
        raise ConfigError(f"register() takes a Source subclass, not {source!r}")
    if not isinstance(getattr(source, "kind", None), str):
        raise ConfigError(f"source {source.__name__} declares no kind (kind: ClassVar[str] = ...)")
    if source.trigger is not None and _kind(source.trigger) != source.kind:
        raise ConfigError(f"source {source.__name__} serves kind {source.kind!r} "
                          f"but its trigger {source.trigger.__name__} is of kind {source.trigger.kind!r}")
    existing = _REGISTRY.get(source.kind)
    reloaded = existing is not None and (existing.__module__, existing.__qualname__) == (
        source.__module__, source.__qualname__)
    if existing is not None and not reloaded:
        raise ConfigError(f"trigger kind {source.kind!r} is already served by {existing.__name__}")
    _REGISTRY[source.kind] = source
    return source


def registered(kind: str) -> type[Source[Any]] | None:
    """The source serving `kind`, if one is registered."""
    return _REGISTRY.get(kind)


def source_for(trigger: Trigger) -> type[Source[Any]]:
    """The source class serving a trigger; ConfigError if its kind is not registered."""
    if not isinstance(trigger, Trigger):
        raise ConfigError(f"expected a trigger declaration (a squall.sources.Trigger), not {trigger!r}")
    source = _REGISTRY.get(_kind(type(trigger)))
    if source is None or source.trigger is None or not isinstance(trigger, source.trigger):
        raise ConfigError(f"no source is registered for {type(trigger).__name__} (kind {trigger.kind!r}): "
                          f"call squall.sources.register() first")
    return source


def sources_for(app: App) -> list[Source[Any]]:
    """A source per registered kind that the app uses (implicit ones always), in
    registration order."""
    sources = []
    for source in _REGISTRY.values():
        triggers = [t for t in app.triggers if t.kind == source.kind]
        if triggers or source.trigger is None:
            sources.append(source(app, triggers))
    return sources


def _register_builtins() -> None:
    from squall.sources.alarms import AlarmSource
    from squall.sources.async_invoke import AsyncInvokeSource
    from squall.sources.events import ArchiveSource, BusSource, RuleSource
    from squall.sources.http import HttpSource
    from squall.sources.queues import QueueSource
    from squall.sources.schedules import ScheduleSource
    from squall.sources.topics import TopicAttributesSource, TopicSource

    for source in (HttpSource, QueueSource, AsyncInvokeSource, AlarmSource, ScheduleSource, BusSource, RuleSource,
                   ArchiveSource, TopicSource, TopicAttributesSource):
        register(source)


_register_builtins()
