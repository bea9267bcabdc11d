"""Toxic and proxy configuration: decoding Toxiproxy's JSON the way Go does, and encoding it back.

Toxiproxy reads request bodies with Go's ``encoding/json``; the quirks we copy are:

* only the first JSON value of a body is read, the rest is ignored; an empty body is ``EOF``;
* object keys match struct fields case-insensitively; unknown keys are ignored;
* ``null`` leaves a field at its current (default) value;
* integer fields refuse strings, booleans and numbers with a fraction or exponent;
* ``toxicity`` is a float32 and is written back in its shortest float32 form (``1``, ``0.5``).

On top of that we are deliberately stricter than Toxiproxy where its server hangs or
crashes (see ``docs/chaos.md``): :func:`validate_attributes` and :func:`validate_toxicity`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._errors import ApiError

UPSTREAM = "upstream"
DOWNSTREAM = "downstream"

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

# type -> (Go struct name, ((json field, Go type), ...)); order is Go's field order.
TOXIC_TYPES: dict[str, tuple[str, tuple[tuple[str, str], ...]]] = {
    "latency": ("LatencyToxic", (("latency", "int64"), ("jitter", "int64"))),
    "bandwidth": ("BandwidthToxic", (("rate", "int64"),)),
    "slow_close": ("SlowCloseToxic", (("delay", "int64"),)),
    "timeout": ("TimeoutToxic", (("timeout", "int64"),)),
    "reset_peer": ("ResetToxic", (("timeout", "int64"),)),
    "slicer": (
        "SlicerToxic",
        (("average_size", "int"), ("size_variation", "int"), ("delay", "int")),
    ),
    "limit_data": ("LimitDataToxic", (("bytes", "int64"),)),
    "noop": ("NoopToxic", ()),
}


@dataclass(frozen=True, slots=True, kw_only=True)
class ToxicSpec:
    """One toxic as configured on a proxy (immutable; an update makes a new spec).

    ``stream`` is echoed exactly as the client sent it; ``direction`` is its parsed form,
    ``"upstream"`` (client to server bytes) or ``"downstream"`` (server to client bytes).
    ``attributes`` holds every attribute of the type, in Go's field order.
    """

    name: str
    type: str
    stream: str
    direction: str
    toxicity: float
    attributes: tuple[tuple[str, int], ...]

    def attr(self, key: str) -> int:
        """The integer attribute ``key`` (0 when the type has no such attribute)."""
        for k, v in self.attributes:
            if k == key:
                return v
        return 0

    def to_json(self) -> dict[str, Any]:
        """The toxic object as Toxiproxy writes it (Go's field order)."""
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": float32_json(self.toxicity),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyInput:
    """The fields of a ``POST /proxies`` (or an update) body after decoding."""

    name: str
    listen: str
    upstream: str
    enabled: bool


# --------------------------------------------------------------------------- JSON in


class _Number(float):
    """A JSON number with a fraction or exponent, remembering its literal for error messages."""

    literal: str

    def __new__(cls, literal: str) -> _Number:
        obj = super().__new__(cls, literal)
        obj.literal = literal
        return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


_DECODER = json.JSONDecoder(parse_float=_Number, parse_constant=_reject_constant)


def decode_body(body: bytes) -> Any:
    """Decode the first JSON value of ``body``, as Go's ``json.Decoder.Decode`` does.

    Raises:
        ApiError: 400 ``bad request body: ...`` for an empty or malformed body.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "bad request body: invalid UTF-8 in JSON input") from None
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        raise ApiError(400, "bad request body: EOF")
    try:
        value, _ = _DECODER.raw_decode(stripped)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(stripped):
            msg = "unexpected EOF"
        else:
            msg = f"invalid character {stripped[exc.pos]!r} ({exc.msg})"
        raise ApiError(400, f"bad request body: {msg}") from None
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"bad request body: {exc}") from None
    return value


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, _Number):
        return f"number {value.literal}"
    if isinstance(value, int):
        return f"number {value}"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: Any, where: str, gotype: str) -> ApiError:
    kind = _json_kind(value)
    if kind.startswith("number") and gotype in ("string", "bool"):
        kind = "number"
    return ApiError(
        400,
        f"bad request body: json: cannot unmarshal {kind} into Go struct field {where} "
        f"of type {gotype}",
    )


def fold_keys(obj: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Pick ``fields`` out of ``obj`` case-insensitively; ``null`` counts as absent.

    Go prefers an exact key match over a case-folded one and the last duplicate wins.
    """
    out: dict[str, Any] = {}
    exact: set[str] = set()
    lowered = {f.lower(): f for f in fields}
    for key, value in obj.items():
        field = key if key in fields else lowered.get(key.lower())
        if field is None or value is None:
            continue
        if key == field:
            exact.add(field)
        elif field in exact:
            continue
        out[field] = value
    return out


def _as_object(value: Any, gotype: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(
            400,
            f"bad request body: json: cannot unmarshal {_json_kind(value).split()[0]} "
            f"into Go value of type {gotype}",
        )
    return value


def _as_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _type_error(value, where, "string")
    return value


def _as_bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(value, where, "bool")
    return value


def _as_int(value: Any, where: str, gotype: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or isinstance(value, _Number):
        raise _type_error(value, where, gotype)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _type_error(value, where, gotype)
    return value


def _as_float32(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, where, "float32")
    number = float(value)
    if not math.isfinite(number) or abs(number) > 3.4028234663852886e38:
        raise _type_error(value, where, "float32")
    return float32_round(number)


def decode_proxy(value: Any, base: ProxyInput) -> ProxyInput:
    """Decode a proxy body over ``base`` (defaults or the proxy's current values)."""
    obj = fold_keys(_as_object(value, "proxy.Proxy"), ("name", "listen", "upstream", "enabled"))
    name = _as_str(obj["name"], "Proxy.name") if "name" in obj else base.name
    listen = _as_str(obj["listen"], "Proxy.listen") if "listen" in obj else base.listen
    upstream = _as_str(obj["upstream"], "Proxy.upstream") if "upstream" in obj else base.upstream
    enabled = _as_bool(obj["enabled"], "Proxy.enabled") if "enabled" in obj else base.enabled
    return ProxyInput(name=name, listen=listen, upstream=upstream, enabled=enabled)


def parse_stream(stream: str) -> str:
    """Parse a ``stream`` value case-insensitively.

    Raises:
        ApiError: 400 with Toxiproxy's message when it is neither upstream nor downstream.
    """
    lowered = stream.lower()
    if lowered in (UPSTREAM, DOWNSTREAM):
        return lowered
    raise ApiError(400, "stream was invalid, can be either upstream or downstream")


@dataclass(frozen=True, slots=True, kw_only=True)
class ToxicHeader:
    """The non-attribute fields of a toxic create body, decoded and checked."""

    name: str
    type: str
    stream: str
    direction: str
    toxicity: float
    raw_attributes: Any


def decode_toxic_header(value: Any) -> ToxicHeader:
    """Decode a toxic create body up to (not including) its attributes.

    Checks happen in Toxiproxy's order: JSON shape, stream, default name, type.
    The caller checks the name for duplicates, then calls :func:`decode_attributes`.
    """
    obj = fold_keys(
        _as_object(value, "toxics.ToxicWrapper"),
        ("name", "type", "stream", "toxicity", "attributes"),
    )
    name = _as_str(obj["name"], "ToxicWrapper.name") if "name" in obj else ""
    type_ = _as_str(obj["type"], "ToxicWrapper.type") if "type" in obj else ""
    stream = _as_str(obj["stream"], "ToxicWrapper.stream") if "stream" in obj else DOWNSTREAM
    toxicity = _as_float32(obj["toxicity"], "ToxicWrapper.toxicity") if "toxicity" in obj else 1.0
    attributes = obj.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise _type_error(attributes, "ToxicWrapper.attributes", "toxics.NoopToxic")
    direction = parse_stream(stream)
    if not name:
        name = f"{type_}_{stream}"
    if type_ not in TOXIC_TYPES:
        raise ApiError(400, "invalid toxic type")
    validate_toxicity(toxicity)
    return ToxicHeader(
        name=name,
        type=type_,
        stream=stream,
        direction=direction,
        toxicity=toxicity,
        raw_attributes=attributes,
    )


def decode_attributes(
    type_: str, raw: Any, base: tuple[tuple[str, int], ...] | None = None
) -> tuple[tuple[str, int], ...]:
    """Decode ``raw`` attributes for ``type_`` over ``base`` (zero values when None)."""
    struct_name, fields = TOXIC_TYPES[type_]
    values = dict(base) if base is not None else {f: 0 for f, _ in fields}
    if raw is not None:
        if not isinstance(raw, dict):
            raise _type_error(raw, "ToxicWrapper.attributes", f"toxics.{struct_name}")
        obj = fold_keys(raw, tuple(f for f, _ in fields))
        for field, gotype in fields:
            if field in obj:
                values[field] = _as_int(obj[field], f"{struct_name}.{field}", gotype)
    result = tuple((f, values[f]) for f, _ in fields)
    validate_attributes(type_, result)
    return result


def decode_toxic_update(value: Any, current: ToxicSpec) -> ToxicSpec:
    """Apply an update body (only ``attributes`` and ``toxicity`` are read) to ``current``."""
    obj = fold_keys(_as_object(value, "toxics.ToxicWrapper"), ("toxicity", "attributes"))
    toxicity = current.toxicity
    if "toxicity" in obj:
        toxicity = _as_float32(obj["toxicity"], "ToxicWrapper.toxicity")
        validate_toxicity(toxicity)
    attributes = decode_attributes(current.type, obj.get("attributes"), current.attributes)
    return replace(current, toxicity=toxicity, attributes=attributes)


# --------------------------------------------------------------------------- stricter checks


def validate_toxicity(toxicity: float) -> None:
    """Refuse a toxicity outside [0, 1] (Toxiproxy stores any float; we answer 400)."""
    if not 0.0 <= toxicity <= 1.0:
        raise ApiError(400, f"toxicity must be between 0 and 1, got {toxicity:g}")


def validate_attributes(type_: str, attributes: tuple[tuple[str, int], ...]) -> None:
    """Refuse attribute values on which Toxiproxy hangs, panics or misbehaves (400)."""
    values = dict(attributes)
    for key, value in attributes:
        if value < 0:
            raise ApiError(400, f"{type_} attribute {key} must not be negative, got {value}")
    if type_ == "bandwidth" and values["rate"] <= 0:
        raise ApiError(
            400,
            f"bandwidth attribute rate must be greater than 0 (KB/s), got {values['rate']}",
        )
    if type_ == "slicer":
        if values["average_size"] < 1:
            raise ApiError(
                400,
                f"slicer attribute average_size must be at least 1, got {values['average_size']}",
            )
        if values["size_variation"] >= values["average_size"]:
            raise ApiError(
                400,
                "slicer attribute size_variation must be smaller than average_size, "
                f"got {values['size_variation']} >= {values['average_size']}",
            )


# --------------------------------------------------------------------------- JSON out


def float32_round(x: float) -> float:
    """The shortest decimal that round-trips through float32, as Go prints a float32."""
    as32 = struct.unpack("<f", struct.pack("<f", x))[0]
    for digits in range(1, 10):
        candidate = float(f"{as32:.{digits}g}")
        if struct.unpack("<f", struct.pack("<f", candidate))[0] == as32:
            return candidate
    return float(as32)


def float32_json(x: float) -> int | float:
    """``x`` ready for ``json.dumps``: whole numbers as integers (Go writes ``1``, not ``1.0``)."""
    return int(x) if x.is_integer() else x


def dumps(value: Any) -> bytes:
    """Compact JSON, as Go's ``json.Marshal`` writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
