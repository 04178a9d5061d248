"""btfids stage."""
