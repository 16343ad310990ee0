"""Bounded waiting. Every wait polls a named condition and says what it waited for on timeout."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable, TypeVar

from .errors import WaitTimeout

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, desc: str, interval: float = 0.25,
               state: Callable[[], Any] | None = None,
               abort_on: tuple[type[BaseException], ...] = ()) -> T:
    """Poll ``predicate`` until it returns something truthy; return that value.

    Args:
        predicate: called repeatedly; exceptions it raises count as "not yet" and the last one
            is reported on timeout.
        timeout: seconds before giving up.
        desc: what is awaited, e.g. ``"spoke1 registered at hub"``.
        interval: seconds between polls.
        state: called once on timeout to describe the last state seen.
        abort_on: exception types that mean "this will never happen" (a daemon died):
            re-raised at once instead of being retried until the timeout.

    Raises:
        WaitTimeout: naming ``desc``, the time waited and the last state or error.
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_error = None
        except abort_on:
            raise
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_error = exc
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)  # pacing between polls of a named condition, not synchronisation
    detail = ""
    if state is not None:
        try:
            detail = f"\nlast state: {state()}"
        except Exception as exc:  # noqa: BLE001
            detail = f"\nlast state: <unavailable: {exc}>"
    if last_error is not None:
        detail += f"\nlast error: {type(last_error).__name__}: {last_error}"
    raise WaitTimeout(f"Timeout after {timeout:g}s waiting for: {desc}{detail}")


def retry(timeout: float = 30.0, interval: float = 0.5, desc: str | None = None):
    """Decorate an assert-style check: re-run it until it stops raising ``AssertionError``.

    The last assertion message is kept in the timeout error.
    """

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args, **kwargs) -> T:
            __tracebackhide__ = True
            deadline = time.monotonic() + timeout
            while True:
                try:
                    return fn(*args, **kwargs)
                except AssertionError as exc:
                    if time.monotonic() >= deadline:
                        what = desc or fn.__name__
                        raise WaitTimeout(f"Timeout after {timeout:g}s waiting for: {what}\nlast failure: {exc}") from None
                time.sleep(interval)  # pacing between polls, bounded by the deadline

        return wrapper

    return deco


def holds_for(predicate: Callable[[], Any], duration: float, desc: str, interval: float = 1.0,
              state: Callable[[], Any] | None = None) -> int:
    """Assert that ``predicate`` stays truthy for ``duration`` seconds, sampled every ``interval``.

    The counterpart of :func:`wait_until` for invariants ("the hub never drops spoke1 within
    its holdtime"). Returns the number of samples taken.

    Raises:
        AssertionError: at the first sample where it does not hold, naming ``desc`` and when.
    """
    __tracebackhide__ = True
    t0 = time.monotonic()
    samples = 0
    while True:
        samples += 1
        if not predicate():
            detail = f"; state: {state()}" if state is not None else ""
            raise AssertionError(f"{desc} stopped holding after {time.monotonic() - t0:.1f}s{detail}")
        if time.monotonic() - t0 >= duration:
            return samples
        time.sleep(interval)  # the sampling period of an invariant, bounded by duration
