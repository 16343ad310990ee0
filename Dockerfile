# The labkit node image: FRR, strongSwan and the tools labkit runs inside a node.
#
# Built by `labkit image build`, which supplies BASE: a debootstrap'ed Debian imported as
# labkit/base:<codename> where no registry is reachable (the default), or an ordinary base
# image where one is (`labkit image build --base debian:bookworm-slim`). Plain Dockerfile
# syntax only: Debian's docker.io 20.10 uses the classic builder.
ARG BASE=labkit/base:bookworm
FROM ${BASE}

ARG DEBIAN_FRONTEND=noninteractive
# --no-install-recommends keeps the image small (Recommends pull in python3-scapy and more);
# libstrongswan-standard-plugins (openssl, gcm, x25519) is then needed explicitly.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      frr \
      strongswan-swanctl charon-systemd \
      libstrongswan-standard-plugins libstrongswan-extra-plugins \
      iproute2 iptables iputils-ping procps tcpdump \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && rm -f /etc/frr/frr.conf

LABEL org.opencontainers.image.title="labkit node" \
      org.opencontainers.image.description="FRR and strongSwan for labkit labs" \
      io.labkit.image="node"

# labkit keeps a node's namespaces with this and starts every daemon itself, after wiring.
CMD ["sleep", "infinity"]
