"""kbuild stage."""
