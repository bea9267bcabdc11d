"""Request steps on a provider that consumes (once-only): the inner X-Road legs its answer
reports must have succeeded through X-Road, each with an X-Road id."""

from __future__ import annotations

import json
from typing import Any

from federation.bench import RequestRecord
from federation.scenario._interpreter import _Run, broken_legs, chained_exchanges
from federation.scenario._model import CallSpec, RequestStep

POP = "EE/GOV/70000001/rr/person"
INC = "FI/GOV/0245437-2/tax/income"


def body(pop_id: object = "FI-1", inc_id: object = "FI-2", inc_status: int = 200) -> bytes:
    return json.dumps(
        {
            "person_id": "38001010000",
            "sources": {
                "population": {"service": POP, "status": 200, "xroad_id": pop_id, "data": {}},
                "income": {"service": INC, "status": inc_status, "xroad_id": inc_id, "data": {}},
            },
        },
        separators=(",", ":"),
    ).encode()


def rec(status: int = 200, error: str | None = None) -> RequestRecord:
    return RequestRecord(
        t=0.0, sent=0.0, latency_s=0.01, service_s=0.01, client="EE/GOV/70000001/consumer",
        service="FI/GOV/0245437-2/portal/profile", direction="EE->FI", method="GET",
        status=status, error=error, xroad_id="EE-9", source="step",
    )  # fmt: skip


def step(**kw: Any) -> RequestStep:
    call = CallSpec(client="EE/GOV/70000001/consumer", service="FI/GOV/0245437-2/portal/profile")
    return RequestStep(index=0, path="steps[0]", call=call, **kw)


def test_both_legs_with_ids_pass_and_are_named() -> None:
    assert broken_legs(body()) == []
    assert [c["xroad_id"] for c in chained_exchanges(body())] == ["FI-1", "FI-2"]
    frag = f'"population":{{"service":"{POP}","status":200,"xroad_id":"FI-'
    assert _Run._judge_response(step(status=200, body_contains=(frag,)), rec(), body()) == []


def test_a_leg_without_an_x_road_id_fails_the_step() -> None:
    for missing in (None, ""):
        problems = _Run._judge_response(step(status=200), rec(), body(pop_id=missing))
        assert problems == [f"chained leg to {POP} has no X-Road id ({missing!r})"]
        # not counted as an exchange for no_lost_messages either
        assert [c["xroad_id"] for c in chained_exchanges(body(pop_id=missing))] == ["FI-2"]


def test_a_failed_leg_fails_a_step_that_expects_success() -> None:
    problems = _Run._judge_response(step(), rec(), body(inc_status=403))
    assert problems == [f"chained leg to {INC} (FI-2) answered 403"]


def test_a_step_expecting_an_error_does_not_judge_the_legs() -> None:
    answer = rec(status=502, error="HTTP 502")
    assert _Run._judge_response(step(status=502), answer, body(inc_status=403)) == []


def test_the_library_fragment_rejects_an_answer_made_without_asking_ee() -> None:
    frag = f'"population":{{"service":"{POP}","status":200,"xroad_id":"FI-'
    local = body().replace(POP.encode(), b"FI/GOV/0245439-9/vtj/person")
    assert _Run._judge_response(step(status=200, body_contains=(frag,)), rec(), local) == [
        f"body lacks {frag!r}"
    ]
