"""kfunc BTF harness: build kernels with a Python resolve_btfids, boot them, judge BPF programs."""

__version__ = "0.1.0"
