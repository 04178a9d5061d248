"""btf stage."""
