"""The node image recipe and the docker runtime's pure helpers (no engine needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import image
from labkit.errors import PrerequisiteError
from labkit.runtime import docker as dk
from labkit.runtime import runtime_list

APT = Path(__file__).resolve().parents[1] / "data" / "apt"


def test_deb822_sources_give_the_mirror_and_the_release_suites():
    sources = image.apt_sources(APT / "deb822")
    assert image.mirror("bookworm", sources) == "http://deb.debian.org/debian"
    lines = [s.line() for s in image.debian_sources("bookworm", sources)]
    assert lines == ["deb http://deb.debian.org/debian bookworm main",
                     "deb http://deb.debian.org/debian bookworm-updates main",
                     "deb http://deb.debian.org/debian-security bookworm-security main"]
    # files that are neither .list nor .sources (here: disabled ones) are not read
    assert all("nodesource" not in s.uri for s in sources)


def test_one_line_sources_with_options_and_other_releases():
    sources = image.apt_sources(APT / "oneline")
    assert image.mirror("bookworm", sources) == "http://mirror.example.org/debian"
    assert [s.line() for s in image.debian_sources("bookworm", sources)] == [
        "deb http://mirror.example.org/debian bookworm main contrib",
        "deb http://security.example.org/debian-security bookworm-security main"]


def test_no_mirror_for_the_release_names_the_fix():
    with pytest.raises(PrerequisiteError, match="--base IMAGE"):
        image.mirror("trixie", image.apt_sources(APT / "oneline"))


def test_upstream_versions_for_the_tag():
    assert image._upstream("8.4.4-1.1~deb12u1") == "8.4.4"
    assert image._upstream("1:10.1-0~deb12u1") == "10.1"
    assert image._upstream("5.9.8-5+deb12u1") == "5.9.8"


def test_container_names_keep_nodes_and_segments_apart():
    assert dk.container_name("lk1a2b3c", "spoke1") == "lk1a2b3c-spoke1"
    assert dk.container_name("lk1a2b3c", "@lan") == "lk1a2b3c_lan"


def test_only_sysctls_of_existing_interfaces_are_set_at_create():
    given = {"net.ipv4.ip_forward": "1", "net.ipv4.conf.all.rp_filter": "0",
             "net.ipv4.conf.default.rp_filter": "0", "net.ipv4.conf.gre1.rp_filter": "0",
             "net.ipv4.conf.lo.rp_filter": "0"}
    assert dk.create_sysctls(given) == {k: v for k, v in given.items() if ".gre1." not in k}


def test_owner_identity_survives_pid_reuse():
    me = dk.owner_id()
    assert dk.owner_alive(me)
    pid, start = me.split(":")
    assert not dk.owner_alive(f"{pid}:{int(start) + 1}")  # same pid, another process
    assert not dk.owner_alive("")


def test_runtime_lists():
    assert runtime_list("netns") == ["netns"]
    assert runtime_list(" docker , netns,docker") == ["docker", "netns"]
    with pytest.raises(ValueError, match="unknown runtime lxc"):
        runtime_list("netns,lxc")


def test_a_missing_engine_names_the_fix(monkeypatch, tmp_path):
    from labkit.runtime import engine

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/docker.sock")
    with pytest.raises(PrerequisiteError, match="install Debian's docker.io and start dockerd"):
        engine.connect()
    (tmp_path / "docker.sock").touch()  # a socket file nobody answers on
    with pytest.raises(PrerequisiteError, match="does not answer"):
        engine.connect(timeout=2)
