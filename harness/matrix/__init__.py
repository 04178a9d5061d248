"""matrix stage: the nightly product of kernel x pahole x resolve_btfids x arch.

spec.py reads the matrix file into cells; run.py builds, boots and judges them (one at a
time or --jobs K); report.py renders JUnit, test_progs JSON and Markdown, html.py the
page, breadth.py each cell's BTF facts and the baseline; outputs.py writes them all;
progress.py is the live line. BPF CI's deny/allow lists are harness.progs.lists.
"""
