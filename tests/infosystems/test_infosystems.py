from __future__ import annotations

import httpx
import trio

from federation.http import HttpClient, Request, Response, serve_http
from federation.identifiers import ClientId, ServiceId
from federation.infosystems import (
    BACKENDS,
    ServiceSpec,
    XRoadCaller,
    serve_infosystem,
    service_url,
    xroad_call,
)
from federation.securityserver import Endpoint, build_rest_request

POP = ServiceId.parse("EE/GOV/70000001/population/persons")
INCOME = ServiceId.parse("FI/GOV/0245437-2/tax/income")
DEBT = ServiceId.parse("FI/GOV/0245437-2/tax/debt")
ECHO = ServiceId.parse("FI/GOV/0245437-2/tax/echo")
PROFILE = ServiceId.parse("FI/COM/2908552-1/kyc/profile")
SERVICES = [
    ServiceSpec(
        service=POP, endpoints=(Endpoint("GET", "/persons/{id}"),), backend="population-register"
    ),
    ServiceSpec(
        service=INCOME, endpoints=(Endpoint("GET", "/persons/{id}/income"),), backend="tax-register"
    ),
    ServiceSpec(service=DEBT, backend="tax-register"),
    ServiceSpec(service=ECHO, backend="echo"),
]


async def start(nursery: trio.Nursery, services: list[ServiceSpec], **kw: object) -> str:
    host, port = await nursery.start(
        lambda task_status: serve_infosystem(services, task_status=task_status, **kw)
    )
    return f"http://{host}:{port}"


async def test_backends_by_mount_and_direct(nursery: trio.Nursery) -> None:
    base = await start(nursery, SERVICES[:3])  # echo would match any unmounted path
    async with httpx.AsyncClient() as http:
        r = await http.get(service_url(base, POP) + "/persons/38001010000")
        assert r.status_code == 200
        person = r.json()
        assert person["id"] == "38001010000"
        assert person["birth_date"] == "1980-01-01"
        assert person["address"]["country"] == "EE"
        again = await http.get(base + "/persons/38001010000")  # unmounted: first match
        assert again.json() == person
        r = await http.get(service_url(base, INCOME) + "/persons/010180-123A/income?year=2023")
        income = r.json()
        assert (income["year"], len(income["monthly"])) == (2023, 12)
        assert (
            income
            == (
                await http.get(service_url(base, INCOME) + "/persons/010180-123A/income?year=2023")
            ).json()
        )
        r = await http.get(service_url(base, INCOME) + "/persons/1/income?year=abc")
        assert r.status_code == 400
        # Unicode digits (superscript, Arabic-Indic, fullwidth) pass str.isdigit() but are
        # not a year: the JSON 400, not a crash
        for year in ("²⁰²³", "٢٠٢٣", "\uff12\uff10\uff12\uff13", "2023²"):
            r = await http.get(service_url(base, INCOME) + f"/persons/1/income?year={year}")
            assert r.status_code == 400, year
            assert r.json()["error"] == "bad_request"
        # declared endpoints restrict the backend's own routes
        r = await http.get(service_url(base, INCOME) + "/companies/123/debt")
        assert r.status_code == 404
        r = await http.get(service_url(base, DEBT) + "/companies/12345678/debt")
        assert r.status_code == 200
        assert r.json()["registry_code"] == "12345678"
        r = await http.get(base + "/nothing/here")
        assert r.status_code == 404
        assert r.json()["error"] == "not_found"
        r = await http.post(service_url(base, POP) + "/persons/1")
        assert r.status_code == 404


async def test_every_backend_answers(nursery: trio.Nursery) -> None:
    paths = {
        "population-register": "/persons/49002029999/address",
        "tax-register": "/persons/1/income/2022",
        "business-register": "/companies/10000001",
        "health-insurance": "/persons/38001010000/coverage",
        "vehicle-register": "/vehicles/123abc",
        "echo": "/x",
    }
    services = [
        ServiceSpec(service=ServiceId.parse(f"FI/GOV/1/sub/{name}"), backend=name) for name in paths
    ]
    base = await start(nursery, services)
    async with httpx.AsyncClient() as http:
        for spec in services:
            r = await http.get(service_url(base, spec.service) + paths[spec.backend])
            assert r.status_code == 200, (spec.backend, r.text)
            assert r.headers["content-type"] == "application/json"
    assert set(BACKENDS) >= set(paths) | {"once-only"}


async def test_echo_sizes_and_headers(nursery: trio.Nursery) -> None:
    base = await start(nursery, SERVICES)
    url = service_url(base, ECHO)
    async with httpx.AsyncClient() as http:
        r = await http.post(
            url + "/a/b?size=1000&k=v",
            content=b"12345",
            headers={"X-Road-Client": "EE/GOV/1/c", "X-Custom": "y"},
        )
        body = r.json()
        assert body["method"] == "POST"
        assert body["path"] == "/a/b"
        assert body["query"] == {"size": "1000", "k": "v"}
        assert body["xroad_headers"] == {"X-Road-Client": "EE/GOV/1/c"}
        assert (body["body_size"], body["payload_size"], len(body["payload"])) == (5, 1000, 1000)
        r = await http.put(url + "/", content=b"x" * 300)
        assert r.json()["payload_size"] == 300
        r = await http.get(url + "?size=4096&raw=1")
        assert r.headers["content-type"] == "application/octet-stream"
        assert len(r.content) == 4096
        r = await http.get(url + "?size=-1")
        assert r.status_code == 400
        for size in ("²", "٣", "\uff11\uff10", "+5", " 5"):
            r = await http.get(url, params={"size": size})
            assert r.status_code == 400, size
            assert r.json()["error"] == "bad_request"


async def fake_client_proxy(nursery: trio.Nursery, is_base: str) -> str:
    """A client proxy stand-in: parses r1 and forwards to the information system, without
    signing (enough to exercise xroad_call and XRoadCaller)."""
    http = HttpClient()
    host, port = is_base.removeprefix("http://").split(":")

    async def close_later() -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await http.aclose()

    nursery.start_soon(close_later)

    async def handle(req: Request) -> Response:
        rest = build_rest_request(req.method, req.target, req.headers, instance="EE")
        mount = service_url("", rest.service)
        resp = await http.request(
            host,
            int(port),
            req.method,
            mount + rest.backend_target(),
            headers=rest.backend_headers(),
            body=req.body,
        )
        return Response(resp.status, [*resp.headers, ("X-Road-Id", rest.xroad_id)], resp.body)

    h, p = await nursery.start(lambda task_status: serve_http(handle, task_status=task_status))
    return f"http://{h}:{p}"


async def test_xroad_call_and_once_only_backend(nursery: trio.Nursery) -> None:
    base = await start(nursery, SERVICES)
    proxy = await fake_client_proxy(nursery, base)
    r = await xroad_call(
        proxy, "EE/GOV/70000001/consumer", INCOME, "/persons/1/income", query={"year": "2021"}
    )
    assert r.status == 200
    assert r.json()["year"] == 2021
    assert r.header(
        "x-road-id",
    ).startswith("EE-")  # type: ignore[union-attr]
    assert r.xroad_error is None
    caller = XRoadCaller(proxy, ClientId.parse("FI/COM/2908552-1/kyc"))
    profile = ServiceSpec(
        service=PROFILE,
        backend="once-only",
        options={"population": str(POP), "income": str(INCOME)},
    )
    base2 = await start(nursery, [profile], caller=caller)
    async with httpx.AsyncClient() as http:
        r2 = await http.get(service_url(base2, PROFILE) + "/persons/38001010000/profile")
    assert r2.status_code == 200
    out = r2.json()
    assert out["sources"]["population"]["data"]["birth_date"] == "1980-01-01"
    assert out["sources"]["income"]["status"] == 200
    base3 = await start(nursery, [profile])  # no caller
    async with httpx.AsyncClient() as http:
        r3 = await http.get(service_url(base3, PROFILE) + "/persons/1/profile")
    assert r3.status_code == 500


def test_every_service_in_the_instance_files_is_served() -> None:
    import pathlib

    import pytest
    import yaml

    from federation.infosystems import check_service_spec

    files = sorted(pathlib.Path(__file__).parents[2].joinpath("instances").glob("*.yaml"))
    if not files:
        pytest.skip("no instances/*.yaml")
    checked = 0
    for f in files:
        data = yaml.safe_load(f.read_text())
        inst = data["instance"]
        for svc in data.get("services", []):
            spec = ServiceSpec(
                service=ServiceId.parse(f"{inst}/{svc['provider']}/{svc['code']}"),
                endpoints=tuple(Endpoint(e["method"], e["path"]) for e in svc["endpoints"]),
                backend=svc["backend"],
            )
            check_service_spec(spec)
            checked += 1
    assert checked > 0


def test_a_backend_that_cannot_serve_an_endpoint_is_refused() -> None:
    import pytest

    from federation.infosystems import check_service_spec

    spec = ServiceSpec(
        service=INCOME, endpoints=(Endpoint("GET", "/nope/{x}"),), backend="tax-register"
    )
    with pytest.raises(ValueError, match="no route"):
        check_service_spec(spec)
    with pytest.raises(ValueError, match="unknown backend"):
        check_service_spec(ServiceSpec(service=INCOME, backend="nope"))
