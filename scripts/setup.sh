#!/usr/bin/env bash
# Install everything labkit needs on a Debian 12 / Ubuntu host, then labkit itself (editable).
# Idempotent: re-running it on a prepared machine takes a few seconds.
#
#   daemons:  FRR (zebra, nhrpd, bgpd), strongSwan (charon-systemd + vici), iptables, iproute2;
#             tshark (the NHRP layer is cross-checked against its dissector)
#   sandbox:  qemu, the distribution kernel and busybox; used only when the host kernel lacks
#             GRE/ESP/NFLOG (labkit says when). Skip them with LABKIT_NO_SANDBOX_PACKAGES=1.
#   docker:   Debian's docker.io (started if no engine answers) and debootstrap, then the node
#             image (`labkit image build`, no registry needed). Skip with LABKIT_NO_DOCKER=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: labkit builds network namespaces and needs root; run: sudo $0" >&2
  exit 1
fi

packages=(frr strongswan-swanctl charon-systemd libstrongswan-standard-plugins libstrongswan-extra-plugins
          iptables iproute2 kmod procps iputils-ping tcpdump tshark graphviz)
if [ "${LABKIT_NO_SANDBOX_PACKAGES:-0}" != "1" ]; then
  packages+=(qemu-system-x86 linux-image-amd64 busybox-static)
fi
docker=1
[ "${LABKIT_NO_DOCKER:-0}" = "1" ] && docker=0
[ "$docker" = "1" ] && packages+=(docker.io debootstrap)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[dev]"

if [ "$docker" = "1" ]; then
  # the engine: the init script where it works, else dockerd in the background (no systemd here)
  if ! docker version >/dev/null 2>&1; then
    echo "setup.sh: starting the Docker engine"
    service docker start >/dev/null 2>&1 || true
    if ! docker version >/dev/null 2>&1; then
      setsid dockerd >/var/log/labkit-dockerd.log 2>&1 < /dev/null &
    fi
    for _ in $(seq 1 300); do  # poll the engine, at most 60 s
      docker version >/dev/null 2>&1 && break
      sleep 0.2
    done
    docker version >/dev/null 2>&1 || { echo "setup.sh: dockerd did not start; see /var/log/labkit-dockerd.log" >&2; exit 1; }
  fi
  python3 -m labkit.cli image build
fi
echo "setup.sh: ready ($(python3 -m labkit.cli --version))"
