#!/usr/bin/env bash
# Install everything labkit needs on a Debian 12 / Ubuntu host, then labkit itself (editable).
# Idempotent: re-running it on a prepared machine takes a few seconds.
#
#   daemons:  FRR (zebra, nhrpd, bgpd), strongSwan (charon-systemd + vici), iptables, iproute2
#   sandbox:  qemu, the distribution kernel and busybox; used only when the host kernel lacks
#             GRE/ESP/NFLOG (labkit says when). Skip them with LABKIT_NO_SANDBOX_PACKAGES=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: labkit builds network namespaces and needs root; run: sudo $0" >&2
  exit 1
fi

packages=(frr strongswan-swanctl charon-systemd libstrongswan-standard-plugins libstrongswan-extra-plugins
          iptables iproute2 kmod procps iputils-ping tcpdump)
if [ "${LABKIT_NO_SANDBOX_PACKAGES:-0}" != "1" ]; then
  packages+=(qemu-system-x86 linux-image-amd64 busybox-static)
fi

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
echo "setup.sh: ready ($(python3 -m labkit.cli --version))"
