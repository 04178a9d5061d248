"""`python -m harness.btfids`: what kbuild runs as RESOLVE_BTFIDS (harness.kbuild.toolchains)."""

import sys

from harness.btfids.cli import main

sys.exit(main())
