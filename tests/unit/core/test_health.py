"""The runtime's gate: closed with a reason, it holds callbacks until it opens."""

from squall.core.health import Gate


def test_a_gate_calls_its_waiters_once_when_it_opens():
    gate, calls = Gate(), []
    assert gate.is_open
    gate.when_open(lambda: calls.append("now"))  # open: called at once
    gate.close("the zygote is restarting")
    assert not gate.is_open and gate.reason == "the zygote is restarting"
    waiter = lambda: calls.append("later")  # noqa: E731
    gate.when_open(waiter)
    gate.when_open(waiter)  # registered once
    assert calls == ["now"]
    gate.open()
    gate.open()
    assert calls == ["now", "later"]
