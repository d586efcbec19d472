"""What plugin code holds of a capability: a facade with its public methods, and no host object.

A capability (Storage, Cache, ...) is a host object: it holds a store, a Redis client, a job queue
or a log writer, shared with every other config, and through them every team's data. Plugin code
never gets it. `Meta` hands out facades: instances of a one-off class per capability whose only
attributes are forwarding methods (and, for `utils`, the `cursor` facade). The facade keeps no
reference to its capability: the capability is found through `_HOSTS`, a module-level table keyed
by the facade's id, and the entry goes when the facade does (`__del__`), so that nothing reachable
from `meta` (slots, `__dict__`, bound methods' `__self__`/`__func__`, closures, defaults, class
attributes) leads to a host object. Not a weak-keyed table: a weak reference's callback would
lead from the facade back to the table, and through it to every config's capabilities. The one
route left is a function's `__globals__` (and from there every module), which the sandbox's
guards refuse and which only a VM process can take away (issue 13).

Every argument crossing a facade is bounded in size and depth first (`_bridge.check_argument`),
whatever the capability then does with it (a url's `str()`, a body's JSON). A capability's
exception reaches the plugin stripped of its traceback and context (the host's
frames and exception objects); `meta.jobs.<name>(payload)` returns a job handle's facade.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from plugin_server.plugins.meta._bridge import check_argument

_HOSTS: dict[int, Any] = {}  # id of a live facade -> its capability


class Facade:
    """A capability as plugin code sees it: read-only, its methods forward to the host object."""

    __slots__ = ()

    def __del__(self) -> None:
        _HOSTS.pop(id(self), None)

    def __setattr__(self, name: str, value: object) -> None:
        # No write reaches the capability, not even from host code: with a guard missing, a plugin
        # could otherwise re-point a capability at an object of its own, which the host would call.
        raise AttributeError(f"meta.{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"meta.{type(self).__name__} is read-only")

    def __repr__(self) -> str:
        return f"<meta.{type(self).__name__}>"


def facade_class(name: str, methods: Iterable[str]) -> type[Facade]:
    """A facade class named `name` forwarding `methods` (a method named `__call__` makes it
    callable)."""
    body: dict[str, Any] = {"__slots__": ()}
    for method in methods:
        body[method] = _forward(method)
    return type(name, (Facade,), body)


def wrap(cls: type[Facade], host: Any) -> Facade:
    """A new facade of `cls` for the capability `host`."""
    facade = object.__new__(cls)
    _HOSTS[id(facade)] = host
    return facade


def facade(host: Any) -> Facade:
    """The facade of a capability: its public methods (and `__call__`), nothing else."""
    return wrap(_class_of(type(host)), host)


_CLASSES: dict[type, type[Facade]] = {}  # capability class -> its facade class


def _class_of(kind: type) -> type[Facade]:
    cls = _CLASSES.get(kind)
    if cls is None:
        methods = [name for name in dir(kind) if not name.startswith("_") and callable(getattr(kind, name))]
        if any("__call__" in vars(base) for base in kind.__mro__[:-1]):
            methods.append("__call__")
        cls = _CLASSES[kind] = facade_class(kind.__name__, methods)
    return cls


class Jobs(Facade):
    """`meta.jobs`: one attribute per job of the plugin; `meta.jobs.<name>(payload)` is a handle."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        try:
            getattr(_HOSTS[id(self)], name)  # refuses names that are not the plugin's jobs
        except AttributeError as exc:
            error = AttributeError(str(exc))  # a fresh one: not carrying the host object as `.obj`
        else:
            return _job(self, name)
        raise error


def _job(jobs: Jobs, name: str) -> Callable[..., Any]:
    def job(payload: Any = None) -> Any:
        try:
            check_argument(payload)
            handle = getattr(_HOSTS[id(jobs)], name)(payload)
        except Exception as exc:  # noqa: BLE001 - re-raised below, without the host's frames
            error = exc
        else:
            return facade(handle)
        raise bare(error)

    job.__name__ = job.__qualname__ = name
    return job


def jobs_facade(host: Any) -> Jobs:
    jobs = object.__new__(Jobs)
    _HOSTS[id(jobs)] = host
    return jobs


class Utils(Facade):
    """`meta.utils`: `cursor`."""

    __slots__ = ("cursor",)

    cursor: Facade


def utils_facade(cursor: Any) -> Utils:
    utils = object.__new__(Utils)
    object.__setattr__(utils, "cursor", facade(cursor))
    return utils


def host_of(facade: Facade) -> Any:
    """The capability behind `facade` (host code only: tests and the runtime)."""
    return _HOSTS[id(facade)]


def _forward(method: str) -> Callable[..., Any]:
    def forward(self: Facade, *args: Any, **kwargs: Any) -> Any:
        try:
            for value in (*args, *kwargs.values()):
                check_argument(value)
            return getattr(_HOSTS[id(self)], method)(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised below, without the host's frames
            error = exc
        raise bare(error)

    forward.__name__ = forward.__qualname__ = method
    return forward


def bare(error: BaseException) -> BaseException:
    """`error` without the host's traceback and context, to be raised outside any except block
    (raised inside one, Python would set the handled exception as its context again)."""
    error.__context__ = None
    error.__cause__ = None
    return error.with_traceback(None)
