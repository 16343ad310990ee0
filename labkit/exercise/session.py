"""A running exercise: its lab (started like ``labkit up``), the fault applied, and what the student used.

The exercise's state is kept in the lab's own record (``state.LabRecord.notes``), so it goes
with the lab: ``labkit down``, ``labkit cleanup`` and ``labkit exercise stop`` leave nothing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from .. import state
from ..errors import LabkitError
from ..lab import Lab
from ..load import load
from ..sandbox import vm
from .spec import Exercise, load_exercise

NOTE = "exercise"  # the key of the exercise's state in the lab record's notes


@dataclass
class Session:
    """An exercise whose lab is running."""

    record: state.LabRecord
    exercise: Exercise

    @property
    def notes(self) -> dict:
        return self.record.notes[NOTE]

    def save(self) -> None:
        state.save(self.record)

    def lab(self) -> Lab:
        return attach(self.record)


def running(lab_id: str | None = None) -> list[state.LabRecord]:
    """Records of live labs that run an exercise (``lab_id``: only that one)."""
    return [r for r in state.records() if NOTE in r.notes and r.status == "up" and r.alive()
            and (lab_id is None or r.id == lab_id)]


def current(lab_id: str | None = None) -> Session:
    """The exercise the student works on.

    Raises:
        LabkitError: none runs (naming how to start one), or several do and ``lab_id`` picks none.
    """
    recs = running(lab_id)
    if not recs:
        raise LabkitError(f"no exercise is running{' in lab ' + lab_id if lab_id else ''}: start one with "
                          "'labkit exercise start NAME' ('labkit exercise list' shows them)")
    if len(recs) > 1:
        which = ", ".join(f"{r.id}: {r.notes[NOTE]['name']}" for r in recs)
        raise LabkitError(f"{len(recs)} exercises are running ({which}): name one with --lab")
    rec = recs[0]
    return Session(rec, load_exercise(rec.notes[NOTE]["dir"]))


def attach(rec: state.LabRecord) -> Lab:
    """A :class:`Lab` on a recorded running lab: probes and commands reach its nodes (no plan: it is not ours)."""
    lab = Lab(load(rec.topology), lab_id=rec.id, runtime=rec.runtime)
    if rec.runtime == "docker":
        from ..runtime.docker import attach as docker_attach

        lab.runtime = docker_attach(rec.id, rec.pids)
    else:
        from ..runtime.netns import NetnsRuntime

        lab.runtime = NetnsRuntime(rec.id, pids=rec.pids)
    return lab


def refuse_without_kernel(exercise: Exercise, mode: str, progress: Callable[[str], None]) -> None:
    """An exercise leaves its lab running for the student, which needs this kernel: say so, and the alternative."""
    decision = vm.decide(load(exercise.topology).required_kernel_features(), mode)
    progress(f"mode: {decision}")
    if decision.use:
        raise LabkitError(
            f"'labkit exercise start' leaves a lab running for you to work on, which needs the host kernel, but "
            f"{decision.reason}. Run it on a Linux host or VM with GRE, ESP and NFLOG (any stock Debian/Ubuntu "
            f"kernel); here, 'python3 -m pytest exercises -k {exercise.name}' runs the exercise and its reference "
            "solution in the VM sandbox")


def start(exercise: Exercise, runtime: str, progress: Callable[[str], None], converge_timeout: float = 300.0,
          image: str | None = None, carry: dict | None = None) -> Session:
    """Bring the exercise's lab up (detached, recorded as ``labkit up`` does), converge it, then break it.

    ``carry``: what the student already used on this exercise (hints, attempts), kept across a reset.
    """
    if running():
        rec = running()[0]
        raise LabkitError(f"exercise {rec.notes[NOTE]['name']!r} is running in lab {rec.id}: finish it with "
                          "'labkit exercise stop' (or start it again with 'labkit exercise reset')")
    lab = Lab.from_path(exercise.topology, detach=True, progress=progress, converge_timeout=converge_timeout,
                        runtime=runtime, image=image)
    notes = {"name": exercise.name, "dir": str(exercise.dir), "started": time.time(), "hints_shown": 0,
             "attempts": 0, "solution_viewed": False, **(carry or {})}
    rec = state.LabRecord(lab.id, str(lab.topology.source.resolve()), runtime, {}, os.getpid(), time.time(),
                          status="starting", notes={NOTE: notes})
    state.save(rec)  # before anything exists: a start killed half-way leaves an orphan cleanup finds
    try:
        lab.up()
        progress(f"[{exercise.name}] preparing the exercise ...")
        apply_breaks(lab, exercise)
    except BaseException:
        lab.down()  # idempotent: a failed up() has torn down already
        state.forget(lab.id)
        raise
    rec.pids, rec.status = lab.runtime.pids, "up"
    state.save(rec)
    return Session(rec, exercise)


def apply_breaks(lab: Lab, exercise: Exercise) -> None:
    """The exercise's fault, on the healthy lab: commands, FRR configuration, or ``lab.faults`` calls."""
    for step in exercise.breaks:
        if step.kind == "run":
            lab.node(step.node).exec(*step.argv, timeout=120.0).check()
        elif step.kind == "configure":
            lab.node(step.node).configure(step.daemon, *step.lines)
        else:
            getattr(lab.faults, step.fault)(*step.argv)


def stop(session: Session) -> list[str]:
    """Tear the exercise's lab down (what ``labkit down`` does); its record, and so the exercise state, go too."""
    return state.cleanup(lab_id=session.record.id)


def reset(session: Session, progress: Callable[[str], None], converge_timeout: float = 300.0,
          image: str | None = None) -> Session:
    """Start the same exercise again from its broken state; hints seen and attempts made are kept."""
    carry = {k: session.notes[k] for k in ("hints_shown", "attempts", "solution_viewed")}
    runtime = session.record.runtime
    stop(session)
    return start(session.exercise, runtime, progress, converge_timeout, image, carry=carry)
