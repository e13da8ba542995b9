"""permessage-deflate negotiation (RFC 7692 5, 7.1): header syntax, each parameter, offers."""

from __future__ import annotations

import pytest

from server.deflate import Agreement, DeflateSettings, parse_extensions
from server.errors import HandshakeError
from server.handshake import accept, check_request
from tests.server.test_handshake import GOOD, upgrade_request

CHROME = b"permessage-deflate; client_max_window_bits"
# Our default answer: no context takeover either way (server/deflate.py).
DEFAULT_REPLY = b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"


def negotiate(value: bytes, **settings: int | bool) -> Agreement | None:
    return DeflateSettings(**settings).negotiate(parse_extensions([value]))  # type: ignore[arg-type]


def reply(value: bytes, **settings: int | bool) -> bytes | None:
    agreement = negotiate(value, **settings)
    return None if agreement is None else agreement.response


# -- header syntax (RFC 6455 9.1) ---------------------------------------------------------


def test_parse_extensions_reads_offers_params_and_quoted_values() -> None:
    assert parse_extensions([b"permessage-deflate; client_max_window_bits, x-foo ;a= \"1\" ;b",
                             b" , permessage-deflate;server_max_window_bits=10,"]) == (
        (b"permessage-deflate", ((b"client_max_window_bits", None),)),
        (b"x-foo", ((b"a", b"1"), (b"b", None))),
        (b"permessage-deflate", ((b"server_max_window_bits", b"10"),)),
    )


@pytest.mark.parametrize("value", [
    b"permessage-deflate;", b"permessage-deflate; =1", b"permessage-deflate; a=",
    b"permessage-deflate; a=\"1 2\"", b"permessage-deflate; a=\"1", b"permessage deflate",
    b"permessage-deflate; a=1 b", b"\"permessage-deflate\"", b"permessage-deflate; a=@",
])
def test_server_rejects_malformed_extensions_header_with_400(value: bytes) -> None:
    with pytest.raises(HandshakeError) as info:
        check_request(upgrade_request([*GOOD, (b"Sec-WebSocket-Extensions", value)]))
    assert info.value.status == 400
    assert info.value.reason == "invalid Sec-WebSocket-Extensions header"


def test_check_request_keeps_offers_in_order_across_header_lines() -> None:
    handshake = check_request(upgrade_request([
        *GOOD, (b"Sec-WebSocket-Extensions", b"x-webkit-deflate-frame"),
        (b"Sec-WebSocket-Extensions", CHROME),
    ]))
    assert handshake.extensions == (
        (b"x-webkit-deflate-frame", ()),
        (b"permessage-deflate", ((b"client_max_window_bits", None),)),
    )


# -- each parameter (RFC 7692 7.1) --------------------------------------------------------


def test_browser_offer_gets_default_reply() -> None:
    assert reply(CHROME) == DEFAULT_REPLY
    assert reply(b"permessage-deflate") == DEFAULT_REPLY
    assert negotiate(CHROME) == Agreement(DEFAULT_REPLY, True, True, 15, 15)
    assert reply(CHROME, window_bits=12) == (
        DEFAULT_REPLY + b"; server_max_window_bits=12; client_max_window_bits=12"
    )


def test_context_takeover_kept_when_configured_and_client_allows() -> None:
    assert reply(CHROME, context_takeover=True, window_bits=15) == b"permessage-deflate"
    agreement = negotiate(b"permessage-deflate; server_no_context_takeover",
                          context_takeover=True, window_bits=15)
    assert agreement == Agreement(b"permessage-deflate; server_no_context_takeover",
                                  True, False, 15, 15)
    agreement = negotiate(b"permessage-deflate; client_no_context_takeover",
                          context_takeover=True, window_bits=15)
    assert agreement == Agreement(b"permessage-deflate; client_no_context_takeover",
                                  False, True, 15, 15)


@pytest.mark.parametrize(("offered", "ours", "window", "answer"), [
    (b"8", 12, 8, b"server_max_window_bits=8"),  # Huffman coding only (server/deflate.py)
    (b"10", 12, 10, b"server_max_window_bits=10"),
    (b"15", 12, 12, b"server_max_window_bits=12"),
    (b"15", 15, 15, b"server_max_window_bits=15"),
])
def test_server_max_window_bits_never_exceeds_the_offer(
    offered: bytes, ours: int, window: int, answer: bytes
) -> None:
    agreement = negotiate(b"permessage-deflate; server_max_window_bits=" + offered,
                          window_bits=ours, context_takeover=True)
    assert agreement is not None
    assert agreement.response == b"permessage-deflate; " + answer
    assert agreement.server_window_bits == window


@pytest.mark.parametrize(("offered", "ours", "answer", "inflate_bits"), [
    (b"", 15, b"", 15),  # no value, nothing to limit: the reply leaves it out
    (b"", 12, b"; server_max_window_bits=12; client_max_window_bits=12", 12),
    (b"=10", 12, b"; server_max_window_bits=12; client_max_window_bits=10", 10),
    (b"=15", 15, b"; client_max_window_bits=15", 15),
    (b"=8", 12, b"; server_max_window_bits=12; client_max_window_bits=8", 9),  # zlib: 8 is 9
])
def test_client_max_window_bits_with_and_without_value(
    offered: bytes, ours: int, answer: bytes, inflate_bits: int
) -> None:
    agreement = negotiate(b"permessage-deflate; client_max_window_bits" + offered,
                          window_bits=ours, context_takeover=True)
    assert agreement is not None
    assert agreement.response == b"permessage-deflate" + answer
    assert agreement.client_window_bits == inflate_bits


def test_client_max_window_bits_not_offered_is_never_in_the_reply() -> None:
    # RFC 7692 7.1.2.2: "... the corresponding extension negotiation response to the offer
    # MUST NOT include the client_max_window_bits extension parameter."
    agreement = negotiate(b"permessage-deflate", window_bits=9, context_takeover=True)
    assert agreement == Agreement(b"permessage-deflate; server_max_window_bits=9",
                                  False, False, 9, 15)


@pytest.mark.parametrize("offer", [
    b"permessage-deflate; server_no_context_takeover=1",
    b"permessage-deflate; client_no_context_takeover=\"x\"",
    b"permessage-deflate; server_max_window_bits",  # a value is required in an offer
    b"permessage-deflate; server_max_window_bits=7",
    b"permessage-deflate; server_max_window_bits=16",
    b"permessage-deflate; server_max_window_bits=09",  # "without leading zeroes"
    b"permessage-deflate; client_max_window_bits=0",
    b"permessage-deflate; client_max_window_bits=x",
    b"permessage-deflate; unknown_param",
    b"permessage-deflate; Server_No_Context_Takeover",
    # RFC 7692 5: "multiple extension parameters with the same name"
    b"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
    b"permessage-deflate; client_max_window_bits; client_max_window_bits=10",
    b"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
    b"x-webkit-deflate-frame",
])
def test_bad_or_duplicated_parameter_declines_the_offer(offer: bytes) -> None:
    assert negotiate(offer) is None


def test_quoted_value_is_read_unquoted() -> None:
    assert reply(b'permessage-deflate; server_max_window_bits="10"', context_takeover=True) == (
        b"permessage-deflate; server_max_window_bits=10"
    )


def test_first_honourable_offer_wins() -> None:
    offers = (b"permessage-deflate; server_max_window_bits=16, x-other, "
              b"permessage-deflate; client_max_window_bits=10, permessage-deflate")
    assert reply(offers, context_takeover=True, window_bits=12) == (
        b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"
    )


def test_every_offer_declined_means_no_extension() -> None:
    assert reply(b"permessage-deflate; a, permessage-deflate; server_max_window_bits=1") is None


@pytest.mark.parametrize("bad", [
    {"window_bits": 8}, {"window_bits": 16}, {"mem_level": 0}, {"mem_level": 10},
    {"level": -1}, {"level": 10}, {"threshold": -1},
])
def test_settings_out_of_range_raise(bad: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        DeflateSettings(**bad)  # type: ignore[arg-type]


# -- the 101 response ---------------------------------------------------------------------


def test_accept_writes_the_agreed_extension() -> None:
    handshake = check_request(upgrade_request([*GOOD, (b"Sec-WebSocket-Extensions", CHROME)]))
    response, codec = accept(handshake, None, deflate=DeflateSettings())
    assert codec is not None
    assert response.endswith(b"sec-websocket-extensions: " + DEFAULT_REPLY + b"\r\n\r\n")


def test_no_settings_or_no_offer_means_no_extension() -> None:
    handshake = check_request(upgrade_request([*GOOD, (b"Sec-WebSocket-Extensions", CHROME)]))
    response, codec = accept(handshake, None)
    assert codec is None and b"sec-websocket-extensions" not in response
    response, codec = accept(check_request(upgrade_request(GOOD)), None, deflate=DeflateSettings())
    assert codec is None and b"sec-websocket-extensions" not in response


def test_app_extensions_header_wins_and_nothing_is_compressed() -> None:
    handshake = check_request(upgrade_request([*GOOD, (b"Sec-WebSocket-Extensions", CHROME)]))
    response, codec = accept(handshake, None, [(b"sec-websocket-extensions", b"x-app")],
                             deflate=DeflateSettings())
    assert codec is None
    assert response.count(b"sec-websocket-extensions") == 1
    assert response.endswith(b"sec-websocket-extensions: x-app\r\n\r\n")
