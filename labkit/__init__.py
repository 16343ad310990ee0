"""labkit: containerized network test labs for DMVPN (FRR nhrpd + strongSwan), asserted from pytest."""

__version__ = "0.1.0"
