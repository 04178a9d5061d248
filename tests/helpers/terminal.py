"""Children that take Ctrl-C as a terminal delivers it.

pytest-xdist workers and runs started in the background (nohup, a CI shell) have SIGINT
ignored, every child inherits that, and Python leaves an ignored SIGINT alone: a test
that sends the process group SIGINT would then see nothing happen. Passed as Popen's
preexec_fn, this restores the default in the child before it execs.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
