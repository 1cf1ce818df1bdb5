"""Pure domain logic: no I/O, no clock, no database. Pass `now` in."""
