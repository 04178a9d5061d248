"""Bisecting pahole and resolve_btfids: find the tool commit or release that changed kernel BTF."""
