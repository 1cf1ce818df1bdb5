"""The graph tables themselves: shape properties and random walks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from slotgraph.domain.graphs import ALL_ACTIONS, GRAPHS, Graph, Holds


@pytest.mark.parametrize("graph", GRAPHS.values(), ids=list(GRAPHS))
def test_table_shape(graph: Graph) -> None:
    reachable = {graph.initial}
    frontier = [graph.initial]
    while frontier:
        for t in graph.table.get(frontier.pop(), {}).values():
            if t.to not in reachable:
                reachable.add(t.to)
                frontier.append(t.to)
    assert reachable == set(graph.states)
    assert graph.holds <= set(graph.states)
    for state in graph.states:
        if graph.is_final(state):
            assert not graph.holds_in(state), "a final state must free what it held"
        else:
            assert graph.manual_actions(state), f"{state} could only be left automatically"
    for actions in graph.table.values():
        for action, t in actions.items():
            assert t.action == action
            if t.automatic:  # timeout and expire only ever free, and end the booking
                assert not graph.holds_in(t.to)
                assert graph.is_final(t.to)
    for timer in graph.timers:
        assert graph.transition(timer.state, timer.action) is not None


def test_the_issue_contract() -> None:
    assert GRAPHS["instant"].initial == "confirmed"
    assert GRAPHS["confirm_decline"].holds_in("tentative") is False
    assert GRAPHS["instant_payment"].holds_in("tentative") is True
    assert GRAPHS["instant_payment"].automatic_actions("tentative") == ["timeout"]
    assert set(GRAPHS["instant_payment"].manual_actions("paid")) == {
        "cancel",
        "cancel_by_customer",
        "complete",
    }
    assert GRAPHS["group_customer"].holding is Holds.SEAT
    assert GRAPHS["group_owner"].manual_actions("confirmed") == ["cancel", "complete"]


def test_describe_is_the_table() -> None:
    for graph in GRAPHS.values():
        d = graph.describe()
        rebuilt = {(t["from"], t["action"]): (t["to"], t["automatic"]) for t in d["transitions"]}
        expected = {
            (s, a): (t.to, t.automatic) for s, acts in graph.table.items() for a, t in acts.items()
        }
        assert rebuilt == expected
        assert {s["name"] for s in d["states"] if s["holds"]} == graph.holds
        assert {s["name"] for s in d["states"] if s["final"]} == set(graph.final_states)


@given(
    graph=st.sampled_from(list(GRAPHS.values())),
    actions=st.lists(st.sampled_from(sorted(ALL_ACTIONS)), max_size=12),
)
def test_random_walks_stay_in_the_table(graph: Graph, actions: list[str]) -> None:
    state = graph.initial
    for action in actions:
        t = graph.transition(state, action)
        if graph.is_final(state):
            assert t is None
            continue
        if t is None:
            assert action not in graph.manual_actions(state)
            continue
        assert t.to in graph.states
        state = t.to
    assert (state in graph.final_states) == (graph.manual_actions(state) == [])
