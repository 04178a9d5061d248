"""matrix stage: the nightly product of kernel x pahole x resolve_btfids x arch, described in
one TOML file and expanded into cells, plus BPF CI's DENYLIST/ALLOWLIST files read as
test_progs reads them, so a nightly run can reuse the lists the kernel tree already keeps."""
