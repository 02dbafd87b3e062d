"""The coordinator reads no pickle: a Dask client that takes msgpack only, and every unpickling
path of Dask in this process closed while it is connected (grader/batch/cluster.py, "Security").

:func:`no_unpickling` swaps the ``loads`` functions Dask's client side reaches for
:func:`_refuse`, which returns an inert :class:`PickleRefused`; :func:`data_only_client` makes a
client whose report stream is read without deserializing and whose failed tasks say
:data:`TASK_FAILED` instead of carrying their (pickled) exception.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from grader.batch.daskproc import require_dask


class PickleRefused(TypeError):
    """What Dask gets in place of anything it would have unpickled in the coordinator's process
    under :func:`no_unpickling`: an inert exception (returned, not raised, so that a message
    holding a pickle does not break the client's connection; where Dask expects an exception,
    this is the exception)."""


def _refuse(*args: Any, **kwargs: Any) -> Any:
    return PickleRefused("not unpickled: the coordinator reads no pickle from the cluster (results are JSON data "
                         "only)")


class _PickleWithoutLoads:
    """The ``pickle`` module as Dask's client module sees it under :func:`no_unpickling`."""

    loads = staticmethod(_refuse)
    load = staticmethod(_refuse)

    def __getattr__(self, name: str) -> Any:
        import pickle
        return getattr(pickle, name)


@contextmanager
def no_unpickling() -> Iterator[None]:
    """While this holds, Dask unpickles nothing in this process.

    Read from distributed 2026.8's source, these are the ways bytes from the cluster are
    unpickled in a client's process, and each is closed here:

    - the ``loads`` of ``distributed.protocol.pickle``: the ``__Pickled__`` frames of every message (decoded
      whatever the client's ``deserializers`` say), the ``pickle`` and ``dask`` serializer families
      (``type-serialized``), numpy frames, and task exceptions and tracebacks
      (``core.clean_exception``, which a ``task-erred`` report and ``client.run`` errors go through);
    - ``distributed.client.loads`` (the same function bound at import): the result type of a
      ``key-in-memory`` report and the pickled RPC errors of ``client.run``;
    - the ``loads`` of ``distributed.client.pickle``: ``warn`` events a worker posts to the client.

    The coordinator has no scheduler in its process (``local:N`` starts it as a subprocess), so
    nothing in this process needs to unpickle while the client runs."""
    import distributed.client as dask_client
    import distributed.protocol.pickle as dask_pickle
    # (module, attribute, what it is while this holds): read and set by name, as Dask binds them
    # at import and does not export them.
    closed: tuple[tuple[ModuleType, str, object], ...] = (
        (dask_pickle, "loads", _refuse), (dask_client, "loads", _refuse),
        (dask_client, "pickle", _PickleWithoutLoads()))
    saved = [(module, name, getattr(module, name)) for module, name, _ in closed]
    for module, name, value in closed:
        setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


TASK_FAILED = "the task failed on the cluster; its exception was not read (the coordinator reads no pickle)"


def data_only_client(address: str, security: Any, timeout: float) -> Any:
    """A Dask client that sends and accepts msgpack only (never a pickle from the cluster; the
    rest is closed by :func:`no_unpickling`), authenticated by ``security``.

    Its report stream from the scheduler is read without deserializing (nothing the client needs
    there is serialized; a task's exception is, and is not read: the failed future's exception
    says so), and it takes no ``print``/``warn`` events from workers."""
    distributed = require_dask()
    client = distributed.Client(address, security=security, timeout=timeout, set_as_default=False,
                                serializers=["msgpack"], deserializers=["msgpack"])
    for topic in ("print", "warn"):  # events a worker posts; nothing of theirs is shown here
        client.unsubscribe_topic(topic)
    client.scheduler_comm.comm.deserialize = False
    handle_erred = client._stream_handlers["task-erred"]

    def task_erred(key: Any = None, exception: Any = None, traceback: Any = None, **rest: Any) -> Any:
        return handle_erred(key=key, exception=TASK_FAILED, traceback=None)

    client._stream_handlers["task-erred"] = task_erred
    client._state_handlers["erred"] = task_erred
    return client
