from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from federation.identifiers import ClientId, ServiceId
from federation.securityserver import (
    AccessRights,
    Endpoint,
    MemberInfo,
    ServiceDescription,
    allowed_methods,
    list_clients,
    list_clients_xml,
    list_methods,
)

EE_MEMBER = ClientId.parse("EE/GOV/70000001")
FI_MEMBER = ClientId.parse("FI/GOV/0245437-2")
CONSUMER = ClientId.parse("EE/GOV/70000001/consumer")
KYC = ClientId.parse("FI/COM/2908552-1/kyc")
TAX = ClientId.parse("FI/GOV/0245437-2/tax")
INCOME = ServiceId(TAX, "income")
DEBT = ServiceId(TAX, "debt")

MEMBERS = [
    MemberInfo(id=EE_MEMBER, name="Population Register", subsystems=(("consumer", "Consumer"),)),
    MemberInfo(id=FI_MEMBER, name="Finnish Tax Administration", subsystems=(("tax", None),)),
    MemberInfo(id=ClientId.parse("FI/COM/2908552-1"), name="Nordic Bank"),
]
SERVICES = [
    ServiceDescription(
        service=INCOME,
        endpoints=(Endpoint("GET", "/persons/{id}/income"), Endpoint("get", "/persons/{id}")),
    ),
    ServiceDescription(service=DEBT, endpoints=(Endpoint("GET", "/companies/{code}/debt"),)),
    ServiceDescription(service=ServiceId(TAX, "raw")),
    ServiceDescription(service=ServiceId(TAX, "listMethods")),
    ServiceDescription(service=ServiceId(KYC, "check")),
]


def test_list_clients_own_instance_and_federated() -> None:
    own = list_clients(MEMBERS, own_instance="EE")
    assert own == {
        "member": [
            {
                "id": {
                    "object_type": "MEMBER",
                    "xroad_instance": "EE",
                    "member_class": "GOV",
                    "member_code": "70000001",
                },
                "name": "Population Register",
            },
            {
                "id": {
                    "object_type": "SUBSYSTEM",
                    "xroad_instance": "EE",
                    "member_class": "GOV",
                    "member_code": "70000001",
                    "subsystem_code": "consumer",
                },
                "name": "Population Register",
                "subsystem_name": "Consumer",
            },
        ]
    }
    fi = list_clients(MEMBERS, own_instance="EE", requested="FI")
    ids = [(m["id"]["object_type"], m["id"].get("subsystem_code")) for m in fi["member"]]
    assert ids == [("MEMBER", None), ("SUBSYSTEM", "tax"), ("MEMBER", None)]
    assert "subsystem_name" not in fi["member"][1]
    assert list_clients(MEMBERS, own_instance="EE", requested=" ") == own
    assert list_clients(MEMBERS, own_instance="EE", requested="LV") == {"member": []}


def test_list_clients_xml() -> None:
    root = ET.fromstring(list_clients_xml(MEMBERS, own_instance="EE"))
    ns = {"x": "http://x-road.eu/xsd/xroad.xsd", "i": "http://x-road.eu/xsd/identifiers"}
    members = root.findall("x:member", ns)
    assert len(members) == 2
    assert members[1].findtext("x:id/i:subsystemCode", namespaces=ns) == "consumer"
    assert members[1].findtext("x:subsystemName", namespaces=ns) == "Consumer"


def test_list_methods_shape() -> None:
    out = list_methods(TAX, SERVICES)
    codes = [s["service_code"] for s in out["service"]]
    assert codes == ["debt", "income", "raw"]  # sorted; metaservice and other providers excluded
    income = out["service"][1]
    assert income == {
        "object_type": "SERVICE",
        "xroad_instance": "FI",
        "member_class": "GOV",
        "member_code": "0245437-2",
        "subsystem_code": "tax",
        "service_code": "income",
        "service_type": "REST",
        "endpoint_list": [
            {"method": "GET", "path": "/persons/*/income"},
            {"method": "GET", "path": "/persons/*"},
        ],
    }
    assert out["service"][2]["endpoint_list"] == [{"method": "*", "path": "**"}]


def test_acl_exact_match_and_allowed_methods() -> None:
    acl = AccessRights({INCOME: [CONSUMER, FI_MEMBER]})
    assert acl.allowed(CONSUMER, INCOME)
    assert not acl.allowed(CONSUMER, DEBT)
    assert not acl.allowed(EE_MEMBER, INCOME)  # member of the subsystem: no
    assert acl.allowed(FI_MEMBER, INCOME)
    assert not acl.allowed(TAX, INCOME)  # a member grant does not cover its subsystems
    out = allowed_methods(TAX, CONSUMER, SERVICES, acl)
    assert [s["service_code"] for s in out["service"]] == ["income"]
    assert allowed_methods(TAX, KYC, SERVICES, acl) == {"service": []}
    acl2 = acl.grant(DEBT, KYC).revoke(INCOME, CONSUMER)
    assert acl2.allowed(KYC, DEBT)
    assert not acl2.allowed(CONSUMER, INCOME)
    assert acl.allowed(CONSUMER, INCOME)  # copies
    assert acl2.services_for(KYC) == [DEBT]
    assert acl2.clients_of(INCOME) == {FI_MEMBER}


@pytest.mark.parametrize(
    ("template", "method", "path", "want"),
    [
        ("/persons/{id}/income", "GET", "/persons/38001010000/income", {"id": "38001010000"}),
        ("/persons/{id}/income", "GET", "/persons//income", None),
        ("/persons/{id}/income", "POST", "/persons/1/income", None),
        ("/persons/{id}/income", "GET", "/persons/1/income/2024", None),
        ("/persons/{id}", "GET", "/persons/1/", {"id": "1"}),
        ("/**", "PUT", "/a/b/c", {"**": "a/b/c"}),
        ("/**", "GET", "/", {"**": ""}),
        ("/files/*", "GET", "/files/x", {}),
        ("/", "GET", "/", {}),
    ],
)
def test_endpoint_match(template: str, method: str, path: str, want: dict[str, str] | None) -> None:
    ep = Endpoint("*" if template == "/**" else "GET", template)
    assert ep.match(method, path) == want


def test_check_access() -> None:
    from federation.securityserver import Fault, XRoadError, check_access

    services = {s.service: s for s in SERVICES}
    acl = AccessRights({INCOME: [CONSUMER]})
    assert check_access(services, acl, CONSUMER, INCOME).service == INCOME
    with pytest.raises(XRoadError) as info:
        check_access(services, acl, KYC, INCOME)
    assert info.value.fault is Fault.ACCESS_DENIED
    with pytest.raises(XRoadError) as info:
        check_access(services, acl, CONSUMER, ServiceId(TAX, "nope"))
    assert info.value.fault is Fault.UNKNOWN_SERVICE
    with pytest.raises(XRoadError) as info:
        check_access(services, acl, CONSUMER, ServiceId(TAX, "listMethods"))
    assert info.value.fault is Fault.UNKNOWN_SERVICE
