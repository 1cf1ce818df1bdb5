"""The graph tables against a copy written out by hand, from the issue's description.

Nothing here is derived from `slotgraph.domain.graphs`: a changed transition, holding state,
final state or automatic action fails a test until this page is changed too, on purpose.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slotgraph.domain.graphs import ALL_ACTIONS, GRAPHS, Graph, Occupies

CANCELS = {
    "cancel": "cancelled",
    "cancel_by_customer": "cancelled_by_customer",
    "cancel_by_owner": "cancelled_by_owner",
}

# graph -> state -> action -> next state, actions in the order the API lists them
TABLES: dict[str, dict[str, dict[str, str]]] = {
    "instant": {"confirmed": {**CANCELS, "complete": "completed"}},
    "confirm_decline": {
        "tentative": {
            "confirm": "confirmed",
            "decline": "declined",
            "cancel": "cancelled",
            "expire": "expired",
        },
        "confirmed": {**CANCELS, "complete": "completed"},
    },
    "instant_payment": {
        "tentative": {"pay": "paid", "cancel": "cancelled", "timeout": "unpaid"},
        "paid": {
            "cancel": "cancelled",
            "cancel_by_customer": "cancelled_by_customer",
            "complete": "completed",
        },
    },
    "group_owner": {"confirmed": {"cancel": "cancelled", "complete": "completed"}},
    "group_customer": {
        "confirmed": {
            "cancel_by_customer": "cancelled_by_customer",
            "cancel_by_owner": "cancelled_by_owner",
            "cancel": "cancelled",
            "complete": "completed",
        }
    },
    "group_customer_payment": {
        "tentative": {
            "pay": "paid",
            "timeout": "unpaid",
            "cancel_by_customer": "cancelled_by_customer",
            "cancel_by_owner": "cancelled_by_owner",
            "cancel": "cancelled",
        },
        "paid": {
            "complete": "completed",
            "cancel_by_customer": "cancelled_by_customer",
            "cancel_by_owner": "cancelled_by_owner",
        },
    },
}
INITIAL = {
    "instant": "confirmed",
    "confirm_decline": "tentative",
    "instant_payment": "tentative",
    "group_owner": "confirmed",
    "group_customer": "confirmed",
    "group_customer_payment": "tentative",
}
HOLDING = {
    "instant": (Occupies.SLOT, {"confirmed"}),
    "confirm_decline": (Occupies.SLOT, {"confirmed"}),
    "instant_payment": (Occupies.SLOT, {"tentative", "paid"}),
    "group_owner": (Occupies.SLOT, {"confirmed"}),
    "group_customer": (Occupies.SEAT, {"confirmed"}),
    "group_customer_payment": (Occupies.SEAT, {"tentative", "paid"}),
}
AUTOMATIC = {"expire", "timeout"}  # applied by slotgraph, never through the API
FINAL = {
    "instant": {"cancelled", "cancelled_by_customer", "cancelled_by_owner", "completed"},
    "confirm_decline": {
        "declined",
        "cancelled",
        "expired",
        "cancelled_by_customer",
        "cancelled_by_owner",
        "completed",
    },
    "instant_payment": {"cancelled", "unpaid", "cancelled_by_customer", "completed"},
    "group_owner": {"cancelled", "completed"},
    "group_customer": {"cancelled", "cancelled_by_customer", "cancelled_by_owner", "completed"},
    "group_customer_payment": {
        "cancelled",
        "cancelled_by_customer",
        "cancelled_by_owner",
        "unpaid",
        "completed",
    },
}
EVERY_ACTION = sorted(
    {"create", "update", "timeout_now"}
    | {a for table in TABLES.values() for moves in table.values() for a in moves}
)


def test_the_graphs_are_the_written_ones() -> None:
    assert set(GRAPHS) == set(TABLES)
    assert {
        a for table in TABLES.values() for moves in table.values() for a in moves
    } == ALL_ACTIONS


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_state_and_action(name: str) -> None:
    graph = GRAPHS[name]
    table = TABLES[name]
    assert graph.initial == INITIAL[name]
    assert (graph.occupies, set(graph.holding_states)) == HOLDING[name]
    states = set(table) | {to for moves in table.values() for to in moves.values()}
    assert set(graph.states) == states
    assert set(graph.final_states) == FINAL[name]
    for state in states:
        moves = table.get(state, {})
        assert graph.is_final(state) is (state in FINAL[name])
        assert graph.holds_in(state) is (state in HOLDING[name][1])
        assert graph.manual_actions(state) == [a for a in moves if a not in AUTOMATIC]
        assert graph.automatic_actions(state) == [a for a in moves if a in AUTOMATIC]
        for action in EVERY_ACTION:
            t = graph.transition(state, action)
            assert (t.to if t else None) == moves.get(action), (state, action)
            assert t is None or t.automatic is (action in AUTOMATIC)


@given(
    name=st.sampled_from(sorted(TABLES)),
    actions=st.lists(st.sampled_from(EVERY_ACTION), max_size=12),
)
def test_random_walks_follow_the_written_table(name: str, actions: list[str]) -> None:
    graph: Graph = GRAPHS[name]
    expected = INITIAL[name]
    state = graph.initial
    for action in actions:
        t = graph.transition(state, action)
        want = TABLES[name].get(expected, {}).get(action)
        assert (t.to if t else None) == want
        if want is not None:
            expected, state = want, t.to if t else state
        assert state == expected
        # A final state frees what it held; a booking that is not final can always be left
        # through the API, never only by a timer.
        if expected in FINAL[name]:
            assert not graph.holds_in(state)
            assert graph.manual_actions(state) == []
        else:
            assert graph.manual_actions(state) != []


def test_describe_serves_the_written_table() -> None:
    for name, table in TABLES.items():
        d = GRAPHS[name].describe()
        served = {(t["from"], t["action"]): t["to"] for t in d["transitions"]}
        assert served == {(s, a): to for s, moves in table.items() for a, to in moves.items()}
        assert {t["action"] for t in d["transitions"] if t["automatic"]} == (
            {a for moves in table.values() for a in moves} & AUTOMATIC
        )
        assert {s["name"] for s in d["states"] if s["holds"]} == HOLDING[name][1]
        assert {s["name"] for s in d["states"] if s["final"]} == FINAL[name]
        assert d["initial_state"] == INITIAL[name]
        assert d["holds"] == HOLDING[name][0].value
