"""Build and runtime facts, for bug reports and for checking the dispatch."""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import sys

from . import _engine, _loader, _threads


def _version() -> str:
    try:
        return importlib.metadata.version("lstmlearn")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def config() -> dict[str, object]:
    """Return the facts :func:`show_config` prints, as a dict."""
    core = _engine.core
    threads = _threads.effective_default()
    baseline = importlib.import_module("lstmlearn._core_baseline")
    built = _loader.built_levels()
    supported = _loader.supported_levels(baseline)
    return {
        "version": _version(),
        "isa": _engine.level,
        "isa_built": built,
        "isa_supported": supported,
        "isa_forced": _loader.os.environ.get(_loader.ENV_VAR) or None,
        "simd": core.simd_instruction_sets(),
        "threads": threads.count,
        "threads_rule": threads.rule,
        "thread_limit": _threads.thread_limit(),
        "cpus": _threads.cpu_count().count,
        "eigen": core.eigen_version(),
        "compiler": core.compiler(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def show_config(file=None) -> None:
    """Print the version, instruction-set level, threads, Eigen version and compiler.

    Parameters
    ----------
    file : file-like, optional
        Where to print; standard output by default.
    """
    c = config()
    usable = [lvl for lvl in c["isa_built"] if lvl in c["isa_supported"]]
    lines = [
        f"lstmlearn {c['version']}",
        f"  instruction set : {c['isa']}"
        + (f" (forced by {_loader.ENV_VAR})" if c["isa_forced"] else " (best this CPU supports)"),
        f"  levels built    : {', '.join(c['isa_built'])}",
        f"  levels usable   : {', '.join(usable)}",
        f"  SIMD (Eigen)    : {c['simd']}",
        f"  threads         : {c['threads']} for n_jobs=None (from: {c['threads_rule']}; "
        f"{c['cpus']} CPUs usable; thread limit: {c['thread_limit'] or 'none'})",
        f"  Eigen           : {c['eigen']}",
        f"  compiler        : {c['compiler']}",
        f"  Python          : {c['python']} on {c['platform']}",
    ]
    print("\n".join(lines), file=file or sys.stdout)
