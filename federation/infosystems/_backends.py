"""Sample provider backends: deterministic JSON from the identifiers in the path.

Each backend is a small route table ``(method, template, handler)``; a handler gets a
:class:`BackendCall` and returns ``(status, JSON object)`` or a :class:`BackendReply`.
Data is derived from a SHA-256 of ``backend:key`` (``_rng``), so the same id always gives
the same person, company or vehicle, in every process and run. Estonian personal codes
(``38001010000``: century/sex digit + YYMMDD) and Finnish ones (``010180-123A``) give the
birth date they encode.

``once-only`` shows a provider that is itself a consumer: it answers by calling other
services through its own security server's client proxy (``BackendCall.caller``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from federation.identifiers import ServiceId
from federation.securityserver import Endpoint

if TYPE_CHECKING:
    from federation.infosystems._consumer import XRoadCaller

__all__ = ["BACKENDS", "Backend", "BackendCall", "BackendReply"]

JsonObj = dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class BackendCall:
    """One request as a backend sees it."""

    service: ServiceId | None
    method: str
    path: str
    """Percent-decoded path relative to the service (``/persons/1/income``)."""
    params: dict[str, str]
    query: dict[str, list[str]]
    headers: list[tuple[str, str]]
    body: bytes
    options: Mapping[str, str] = field(default_factory=dict)
    caller: XRoadCaller | None = None

    def header(self, name: str) -> str | None:
        low = name.lower()
        value = None
        for k, v in self.headers:
            if k.lower() == low:
                value = v
        return value

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass(frozen=True, slots=True)
class BackendReply:
    """A reply with full control over status, headers and body."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


Handler = Callable[[BackendCall], Awaitable[tuple[int, JsonObj] | BackendReply]]


@dataclass(frozen=True, slots=True)
class Backend:
    name: str
    routes: tuple[tuple[Endpoint, Handler], ...]

    def endpoints(self) -> tuple[Endpoint, ...]:
        return tuple(ep for ep, _ in self.routes)

    def serves(self, endpoint: Endpoint) -> bool:
        """Whether a declared endpoint (``/persons/{id}``) reaches one of this backend's
        routes (parameter names may differ)."""
        sample = re.sub(r"\{[^/{}]*\}", "x", endpoint.path).replace("**", "x")
        method = "GET" if endpoint.method == "*" else endpoint.method
        return self.find(method, sample) is not None

    def find(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | None:
        for ep, handler in self.routes:
            params = ep.match(method, path)
            if params is not None:
                return handler, params
        return None


def not_found(what: str) -> tuple[int, JsonObj]:
    return 404, {"error": "not_found", "message": what}


def _rng(backend: str, key: str) -> random.Random:
    seed = hashlib.sha256(f"{backend}:{key}".encode()).digest()
    return random.Random(int.from_bytes(seed[:8], "big"))


_EE_FIRST = ["Mari", "Jaan", "Kati", "Toomas", "Liis", "Andres", "Kadri", "Mart", "Piret", "Rein"]
_EE_LAST = ["Tamm", "Saar", "Sepp", "Mägi", "Kask", "Kukk", "Rebane", "Ilves", "Pärn", "Koppel"]
_EE_CITIES = [("Tallinn", "10111"), ("Tartu", "50090"), ("Pärnu", "80010"), ("Narva", "20308")]
_EE_STREETS = ["Pikk", "Narva mnt", "Tartu mnt", "Rüütli", "Lai", "Vabaduse pst"]
_FI_FIRST = ["Aino", "Juhani", "Helmi", "Matti", "Liisa", "Mikko", "Sanna", "Pekka", "Elina"]
_FI_LAST = ["Virtanen", "Korhonen", "Mäkinen", "Nieminen", "Hämäläinen", "Laine", "Koskinen"]
_FI_CITIES = [("Helsinki", "00100"), ("Tampere", "33100"), ("Turku", "20100"), ("Oulu", "90100")]
_FI_STREETS = ["Mannerheimintie", "Aleksanterinkatu", "Hämeenkatu", "Kauppakatu"]
_MAKES = [("Toyota", "Corolla"), ("Skoda", "Octavia"), ("Volvo", "V60"), ("VW", "Golf")]
_INSURERS = {"EE": "Eesti Haigekassa", "FI": "Kela"}


def _country(call: BackendCall) -> str:
    inst = call.service.instance if call.service else "EE"
    return "FI" if inst.upper().startswith("FI") else "EE"


def _birth_date(person_id: str, rng: random.Random) -> str:
    m = re.fullmatch(r"([1-6])(\d\d)(\d\d)(\d\d)\d{4}", person_id)
    if m:
        century = {1: 1800, 2: 1800, 3: 1900, 4: 1900, 5: 2000, 6: 2000}[int(m.group(1))]
        y, mo, d = century + int(m.group(2)), int(m.group(3)), int(m.group(4))
    else:
        m = re.fullmatch(r"(\d\d)(\d\d)(\d\d)([-+A])\d{3}[0-9A-Z]", person_id)
        if m:
            century = {"+": 1800, "-": 1900, "A": 2000}[m.group(4)]
            d, mo, y = int(m.group(1)), int(m.group(2)), century + int(m.group(3))
        else:
            y, mo, d = rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)
    try:
        return _dt.date(y, mo, d).isoformat()
    except ValueError:
        return _dt.date(y, 1, 1).isoformat()


def person(person_id: str, country: str) -> JsonObj:
    """The deterministic person behind ``person_id``."""
    rng = _rng("population-register", person_id)
    first, last, cities, streets = (
        (_FI_FIRST, _FI_LAST, _FI_CITIES, _FI_STREETS)
        if country == "FI"
        else (_EE_FIRST, _EE_LAST, _EE_CITIES, _EE_STREETS)
    )
    city, postal = rng.choice(cities)
    return {
        "id": person_id,
        "first_name": rng.choice(first),
        "last_name": rng.choice(last),
        "birth_date": _birth_date(person_id, rng),
        "address": {
            "street": f"{rng.choice(streets)} {rng.randint(1, 120)}",
            "city": city,
            "postal_code": postal,
            "country": country,
        },
    }


async def _population_person(call: BackendCall) -> tuple[int, JsonObj]:
    return 200, person(call.params["id"], _country(call))


async def _population_address(call: BackendCall) -> tuple[int, JsonObj]:
    p = person(call.params["id"], _country(call))
    return 200, {"id": p["id"], "address": p["address"]}


def income(person_id: str, year: int) -> JsonObj:
    rng = _rng("tax-register", f"{person_id}:{year}")
    months = [round(rng.uniform(1200, 5200), 2) for _ in range(12)]
    total = round(sum(months), 2)
    return {
        "person_id": person_id,
        "year": year,
        "currency": "EUR",
        "monthly": months,
        "total": total,
        "tax_paid": round(total * 0.22, 2),
    }


_ASCII_DIGITS = re.compile(r"[0-9]+")


def _whole_number(text: str) -> int | None:
    """``text`` as a non-negative integer if it is ASCII digits only (``str.isdigit`` also
    accepts ``²`` or ``٣``, which ``int`` then refuses or reads)."""
    return int(text) if _ASCII_DIGITS.fullmatch(text) else None


async def _tax_income(call: BackendCall) -> tuple[int, JsonObj]:
    year_text = call.params.get("year") or call.arg("year") or "2024"
    year = _whole_number(year_text)
    if year is None or not 1900 <= year <= 2100:
        return 400, {"error": "bad_request", "message": f"invalid year {year_text!r}"}
    return 200, income(call.params["id"], year)


async def _tax_debt(call: BackendCall) -> tuple[int, JsonObj]:
    code = call.params["code"]
    rng = _rng("tax-register-debt", code)
    debt = 0.0 if rng.random() < 0.7 else round(rng.uniform(100, 250000), 2)
    return 200, {"registry_code": code, "tax_debt": debt, "currency": "EUR", "has_debt": debt > 0}


def company(code: str, country: str) -> JsonObj:
    rng = _rng("business-register", code)
    stems = ["Nordic", "Baltic", "Aurora", "Kalev", "Saimaa", "Viru", "Pohjola", "Hansa"]
    kinds = ["Logistics", "Software", "Foods", "Energy", "Design", "Consulting"]
    form = "Oy" if country == "FI" else "OÜ"
    board = [person(f"{code}-{i}", country) for i in range(rng.randint(1, 3))]
    return {
        "registry_code": code,
        "name": f"{rng.choice(stems)} {rng.choice(kinds)} {form}",
        "legal_form": form,
        "founded": _dt.date(
            rng.randint(1991, 2023), rng.randint(1, 12), rng.randint(1, 28)
        ).isoformat(),
        "status": "active" if rng.random() < 0.9 else "liquidated",
        "employees": rng.randint(1, 500),
        "board": [{"name": f"{b['first_name']} {b['last_name']}"} for b in board],
    }


async def _business_company(call: BackendCall) -> tuple[int, JsonObj]:
    return 200, company(call.params["code"], _country(call))


async def _business_vat(call: BackendCall) -> tuple[int, JsonObj]:
    code = call.params["code"]
    rng = _rng("business-register-vat", code)
    registered = rng.random() < 0.8
    prefix = "FI" if _country(call) == "FI" else "EE"
    return 200, {
        "registry_code": code,
        "vat_registered": registered,
        "vat_number": f"{prefix}{rng.randint(10**7, 10**8 - 1)}" if registered else None,
        "since": f"{rng.randint(1994, 2023)}-0{rng.randint(1, 9)}-01" if registered else None,
    }


async def _health_coverage(call: BackendCall) -> tuple[int, JsonObj]:
    pid = call.params["id"]
    rng = _rng("health-insurance", pid)
    insured = rng.random() < 0.93
    return 200, {
        "person_id": pid,
        "insured": insured,
        "insurer": _INSURERS[_country(call)],
        "valid_until": f"{rng.randint(2025, 2030)}-12-31" if insured else None,
    }


async def _vehicle(call: BackendCall) -> tuple[int, JsonObj]:
    plate = call.params["plate"].upper()
    rng = _rng("vehicle-register", plate)
    make, model = rng.choice(_MAKES)
    return 200, {
        "plate": plate,
        "make": make,
        "model": model,
        "year": rng.randint(1995, 2025),
        "owner_id": str(rng.randint(10**10, 10**11 - 1)),
        "inspection_valid": rng.random() < 0.85,
    }


async def _vehicle_owners(call: BackendCall) -> tuple[int, JsonObj]:
    plate = call.params["plate"].upper()
    rng = _rng("vehicle-register-owners", plate)
    year = rng.randint(1995, 2015)
    owners = []
    for _ in range(rng.randint(1, 4)):
        owners.append({"owner_id": str(rng.randint(10**10, 10**11 - 1)), "since": f"{year}-01-01"})
        year += rng.randint(1, 5)
    return 200, {"plate": plate, "owners": owners}


MAX_ECHO = 64 * 1024 * 1024


async def _echo(call: BackendCall) -> tuple[int, JsonObj] | BackendReply:
    size_text = call.arg("size")
    xroad = {k: v for k, v in call.headers if k.lower().startswith("x-road-")}
    if size_text is not None:
        asked = _whole_number(size_text)
        if asked is None or asked > MAX_ECHO:
            return 400, {"error": "bad_request", "message": f"size must be 0..{MAX_ECHO}"}
        size = asked
    else:
        size = len(call.body)
    out: JsonObj = {
        "method": call.method,
        "path": call.path,
        "query": {k: v[-1] if len(v) == 1 else v for k, v in call.query.items()},
        "xroad_headers": xroad,
        "body_size": len(call.body),
        "payload_size": size,
    }
    if call.arg("raw") is not None:
        return BackendReply(200, b"x" * size, "application/octet-stream")
    out["payload"] = "x" * size
    return 200, out


async def _once_only(call: BackendCall) -> tuple[int, JsonObj]:
    """A provider that consumes: merges a person from the population register with their
    income from the tax register, both fetched through X-Road (``call.caller``).

    Options: ``population`` and ``income`` = service ids to call.
    """
    if call.caller is None:
        return 500, {"error": "no_caller", "message": "this backend needs an X-Road caller"}
    pid = call.params["id"]
    out: JsonObj = {"person_id": pid, "sources": {}}
    for key, path in (("population", f"/persons/{pid}"), ("income", f"/persons/{pid}/income")):
        target = call.options.get(key)
        if not target:
            continue
        resp = await call.caller.call(ServiceId.parse(target), path)
        out["sources"][key] = {
            "service": target,
            "status": resp.status,
            "xroad_id": resp.header("x-road-id"),
            "data": resp.json_or_none(),
        }
        if resp.status != 200:
            return 502, out
    return 200, out


def _routes(*items: tuple[str, str, Handler]) -> tuple[tuple[Endpoint, Handler], ...]:
    return tuple((Endpoint(m, p), h) for m, p, h in items)


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "population-register",
            _routes(
                ("GET", "/persons/{id}", _population_person),
                ("GET", "/persons/{id}/address", _population_address),
            ),
        ),
        Backend(
            "tax-register",
            _routes(
                ("GET", "/persons/{id}/income", _tax_income),
                ("GET", "/persons/{id}/income/{year}", _tax_income),
                ("GET", "/companies/{code}/debt", _tax_debt),
            ),
        ),
        Backend(
            "business-register",
            _routes(
                ("GET", "/companies/{code}", _business_company),
                ("GET", "/companies/{code}/vat", _business_vat),
            ),
        ),
        Backend("health-insurance", _routes(("GET", "/persons/{id}/coverage", _health_coverage))),
        Backend(
            "vehicle-register",
            _routes(
                ("GET", "/vehicles/{plate}", _vehicle),
                ("GET", "/vehicles/{plate}/owners", _vehicle_owners),
            ),
        ),
        Backend("echo", _routes(("*", "/**", _echo))),
        Backend("once-only", _routes(("GET", "/persons/{id}/profile", _once_only))),
    )
}
"""Every sample backend by the name ``instances/*.yaml`` uses in ``services[].backend``."""


def dumps(obj: JsonObj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()
