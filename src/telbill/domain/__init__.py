"""Pure domain: no I/O, no clock reads, no database. Deterministic functions of their inputs."""
