"""How many compute threads the engine uses, and threadpoolctl's handle on it.

The default (``n_jobs=None`` in the estimators, ``n_threads=None`` in
:class:`lstmlearn.nn.LSTM`) is the first of:

1. ``LSTMLEARN_NUM_THREADS``, if set;
2. ``OMP_NUM_THREADS``, if set (Dask's nanny sets it to 1 in each worker,
   joblib's loky workers to their share of the cores);
3. the CPUs this process may use: the cgroup CPU quota (``cpu.max`` or
   ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, rounded up) if it is lower
   than the affinity mask, else the affinity mask, as scikit-learn's OpenMP
   helper and joblib count them.

Negative values count back from rule 3, as joblib does (-1: all of them).
Whatever was asked, the engine runs on no more threads than its process-wide
limit, which ``threadpoolctl.threadpool_limits`` sets through the controller
registered here, as it does for OpenBLAS and OpenMP.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import warnings
from pathlib import Path
from typing import NamedTuple

from . import _engine

ENV_VAR = "LSTMLEARN_NUM_THREADS"
OMP_VAR = "OMP_NUM_THREADS"
# The C functions each extension module exports for the controller.
GET_SYMBOL = "lstmlearn_get_thread_limit"
SET_SYMBOL = "lstmlearn_set_thread_limit"


class Threads(NamedTuple):
    """A thread count and the rule that chose it."""

    count: int
    rule: str


# -- counting CPUs ---------------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _own_cgroups(proc_cgroup: str | None) -> tuple[str | None, str | None]:
    """This process's cgroup v2 path and v1 ``cpu`` controller path, if listed."""
    v2 = v1 = None
    for line in (proc_cgroup or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _directories(mount: Path, own: str | None) -> list[Path]:
    """``mount``/``own`` and each parent up to ``mount``; ``mount`` alone if unknown."""
    out = []
    if own and own != "/":
        path = mount / own.lstrip("/")
        while path != mount and mount in path.parents:
            out.append(path)
            path = path.parent
    out.append(mount)
    return out


def cgroup_quota(root: Path = Path("/sys/fs/cgroup"), proc_cgroup: str | None = None) -> int | None:
    """The CPUs the cgroup CPU quota allows (rounded up), or None if unlimited.

    Reads cgroup v2's ``cpu.max`` or cgroup v1's ``cpu.cfs_quota_us`` and
    ``cpu.cfs_period_us``, for this process's cgroup and its ancestors where
    they are visible and at the root of the mount (a container's own
    cgroup), and returns the smallest. ``root`` and ``proc_cgroup`` (the text
    of ``/proc/self/cgroup``) are parameters for the tests.
    """
    if proc_cgroup is None:
        proc_cgroup = _read(Path("/proc/self/cgroup"))
    own_v2, own_v1 = _own_cgroups(proc_cgroup)
    quotas = []
    for directory in _directories(root, own_v2):
        text = _read(directory / "cpu.max")
        if text:
            fields = text.split()
            if len(fields) == 2 and fields[0] != "max":
                quotas.append((fields[0], fields[1]))
    for mount in (root / "cpu", root / "cpu,cpuacct"):
        for directory in _directories(mount, own_v1):
            quota = _read(directory / "cpu.cfs_quota_us")
            period = _read(directory / "cpu.cfs_period_us")
            if quota and period:
                quotas.append((quota, period))
    counts = []
    for quota, period in quotas:
        try:
            q, p = int(quota), int(period)
        except ValueError:
            continue
        if q > 0 and p > 0:  # v1 writes -1 for no quota
            counts.append(max(1, math.ceil(q / p)))
    return min(counts) if counts else None


# The quota is read from files: once per process (a fork inherits the cgroup),
# so that a one-sample predict does not pay for it on every call.
_cached_quota = functools.lru_cache(maxsize=1)(cgroup_quota)


def _affinity() -> Threads:
    if hasattr(os, "sched_getaffinity"):
        return Threads(max(1, len(os.sched_getaffinity(0))), "affinity mask")
    return Threads(max(1, _engine.core.available_cores()), "CPU count")


def cpu_count() -> Threads:
    """The CPUs this process may use: the cgroup quota, then the affinity mask."""
    cpus = _affinity()
    quota = _cached_quota()
    if quota is not None and quota < cpus.count:
        return Threads(quota, "cgroup CPU quota")
    return cpus


# -- the rule ----------------------------------------------------------------


def _from_env(name: str) -> int | None:
    """A positive count from the environment variable ``name``, or None.

    OMP_NUM_THREADS may list one count per nesting level ("4,2"): the first
    applies. A value that is not a positive integer is ignored, with a warning.
    """
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    first = value.split(",")[0].strip() if name == OMP_VAR else value
    try:
        count = int(first)
    except ValueError:
        count = 0
    if count < 1:
        warnings.warn(
            f"{name}={value!r} is not a positive integer; lstmlearn ignores it",
            RuntimeWarning,
            stacklevel=2,
        )
        return None
    return count


def default_threads() -> Threads:
    """The thread count of ``n_jobs=None``, before the thread limit."""
    for name in (ENV_VAR, OMP_VAR):
        count = _from_env(name)
        if count is not None:
            return Threads(count, name)
    return cpu_count()


def thread_limit() -> int | None:
    """The engine's process-wide thread limit (threadpool_limits), or None."""
    return _engine.core.thread_limit() or None


def effective_default() -> Threads:
    """The threads ``n_jobs=None`` runs on: the rule's count, under the limit."""
    chosen = default_threads()
    limit = thread_limit()
    if limit is not None and limit < chosen.count:
        return Threads(limit, "thread limit (threadpoolctl)")
    return chosen


def resolve(n_jobs: int | None) -> int:
    """Threads for an ``n_jobs`` (or ``n_threads``) argument, as joblib counts.

    None (or 0) is the default rule; a negative value counts back from the
    CPUs this process may use (-1: all, -2: all but one); a positive value is
    itself. The engine applies the thread limit to every call in any case.
    """
    if n_jobs is None or n_jobs == 0:
        return effective_default().count
    if n_jobs < 0:
        return max(1, cpu_count().count + 1 + int(n_jobs))
    return int(n_jobs)


# -- threadpoolctl -----------------------------------------------------------


class _Unlimited(int):
    """The thread count the controller reports while no limit is set.

    threadpool_limits restores a library by passing back the ``num_threads``
    it read on entry; this marker lets that restore remove the limit instead
    of setting one equal to the default. A plain int always sets a limit.
    """


def _controller_class():
    import threadpoolctl

    if not hasattr(threadpoolctl, "register"):  # threadpoolctl < 3.5
        return None

    class LstmlearnController(threadpoolctl.LibController):
        """threadpoolctl's view of the engine module in use.

        Matched by the file name of the module the loader chose (the other
        levels' modules, if loaded, run nothing) and by its exported symbols.
        """

        user_api = "lstmlearn"
        internal_api = "lstmlearn"
        filename_prefixes = (f"_core_{_engine.level}",)
        check_symbols = (GET_SYMBOL, SET_SYMBOL)

        def set_additional_attributes(self):
            self.isa = _engine.level

        def get_num_threads(self):
            limit = getattr(self.dynlib, GET_SYMBOL)()
            return limit if limit > 0 else _Unlimited(default_threads().count)

        def set_num_threads(self, num_threads):
            limit = 0 if isinstance(num_threads, _Unlimited) else max(1, int(num_threads))
            getattr(self.dynlib, SET_SYMBOL)(ctypes.c_int(limit))

        def get_version(self):
            from importlib.metadata import PackageNotFoundError, version

            try:
                return version("lstmlearn")
            except PackageNotFoundError:
                return None

    return LstmlearnController


_registered = False


def register_controller() -> None:
    """Let threadpoolctl see and limit the engine (threadpoolctl >= 3.5)."""
    global _registered
    if _registered:
        return
    try:
        import threadpoolctl
    except ImportError:
        return
    cls = _controller_class()
    if cls is not None:
        threadpoolctl.register(cls)
        _registered = True
