"""progs stage."""
