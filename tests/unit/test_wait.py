"""wait_until: an abort_on exception ends the wait at once; others are retried until the bound."""

import time

import pytest

from labkit.errors import LabError, WaitTimeout
from labkit.wait import wait_until


def test_abort_on_raises_immediately():
    def daemon_died():
        raise LabError("zebra exited with 1")

    t0 = time.monotonic()
    with pytest.raises(LabError, match="zebra exited"):
        wait_until(daemon_died, timeout=30, desc="zebra to serve", abort_on=(LabError,))
    assert time.monotonic() - t0 < 5


def test_other_errors_are_retried_and_reported_on_timeout():
    def not_yet():
        raise LabError("socket not there yet")

    with pytest.raises(WaitTimeout, match="last error: LabError: socket not there yet"):
        wait_until(not_yet, timeout=0.3, desc="the socket", interval=0.05)


def test_holds_for_samples_an_invariant_and_names_when_it_broke():
    from labkit.wait import holds_for

    assert holds_for(lambda: True, 0.05, "always", interval=0.01) >= 2
    calls = iter([True, True, False])
    with pytest.raises(AssertionError, match=r"flaky stopped holding after .*s; state: broken"):
        holds_for(lambda: next(calls), 10, "flaky", interval=0.01, state=lambda: "broken")
