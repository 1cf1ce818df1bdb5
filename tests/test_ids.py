"""The ids every row takes (db/models/base.py `new_id`): UUIDv7, in creation order, and never
the same in two processes forked from one."""

from __future__ import annotations

import multiprocessing
import uuid

from slotgraph.db.models import new_id


def test_ids_are_uuid7_in_creation_order_and_distinct() -> None:
    ids = [new_id() for _ in range(5000)]  # more than one draw of random bytes
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for id_ in ids:
        assert id_.version == 7
        assert id_.variant == uuid.RFC_4122
        again = uuid.UUID(str(id_))  # as a request would give it back
        assert again == id_
        assert hash(again) == hash(id_)
        assert {again: 1}[id_] == 1


def _child_id(queue: multiprocessing.Queue[str]) -> None:
    queue.put(str(new_id()))


def test_a_forked_process_draws_other_ids_than_its_parent() -> None:
    new_id()  # the parent has random bytes drawn for its next ids
    queue: multiprocessing.Queue[str] = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_child_id, args=(queue,))
    child.start()
    theirs = uuid.UUID(queue.get(timeout=30))
    child.join(30)
    ours = new_id()
    # the last 62 bits are random (unless bumped within a millisecond, which adds 1)
    assert abs((theirs.int & (2**62 - 1)) - (ours.int & (2**62 - 1))) > 1
