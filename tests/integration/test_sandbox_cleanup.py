"""Sandbox VMs whose labkit owner died are found by `labkit cleanup` (no VM needed to test it)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from labkit.sandbox import vm
from labkit.wait import wait_until

DEAD_OWNER = 4194303  # above any pid this kernel hands out by default here


def test_orphaned_vm_processes_and_their_session_are_killed(tmp_path):
    script_dir = f"/tmp/{vm.VM_TMP_PREFIX}{DEAD_OWNER}-unit"
    # a stand-in for vng: its command line names the guest script's directory; its child (like qemu) does not
    fake = subprocess.Popen(["sh", "-c", "sleep 600 & wait", f"{script_dir}/guest.sh"], start_new_session=True)
    try:
        wait_until(lambda: fake.pid in vm.orphaned_vms(), 5, "the fake VM to be seen as orphaned")
        killed = vm.kill_orphaned_vms()
        assert fake.pid in killed and len(killed) >= 2, killed  # the session's sleep went too
        assert fake.wait(timeout=5) != 0
    finally:
        if fake.poll() is None:
            fake.kill()


def test_a_vm_with_a_live_owner_is_left_alone():
    live = subprocess.Popen(["sh", "-c", "sleep 600", f"/tmp/{vm.VM_TMP_PREFIX}1-unit/guest.sh"], start_new_session=True)
    try:
        assert live.pid not in vm.orphaned_vms()  # pid 1 is alive
    finally:
        live.kill()
        live.wait()


def test_temp_dirs_of_dead_owners_are_removed(tmp_path):
    from labkit import state

    dead = Path(f"/tmp/{vm.VM_TMP_PREFIX}{DEAD_OWNER}-stale")
    image = Path(f"/tmp/labkit-image-{DEAD_OWNER}-stale")
    mine = Path(f"/tmp/labkit-image-{os.getpid()}-live")
    for d in (dead, image, mine):
        d.mkdir(exist_ok=True)
    try:
        removed = state.remove_stale_temp_dirs()
        assert str(dead) in removed and str(image) in removed and not dead.exists() and not image.exists()
        assert mine.exists()
    finally:
        mine.rmdir()
