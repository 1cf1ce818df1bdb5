"""Bookings: create, read, change them, and move them through their graph.

  lifecycle  the state machine: transition, the automatic actions (timeout, expire), the
             overlap check and guard, and what a booking holds
  creating   a new booking: one resource, a pool, or a seat in a class
  changing   graph actions and modifications
  reading    one booking, a page of them, a booking's history
  timers     the worker's timers

Every use case owns one transaction. Locks are taken in one global order: a group_owner
booking (the class) before its seat bookings, and several bookings in id order; so no two
transactions can wait on each other in a cycle.
"""
