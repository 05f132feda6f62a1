import pytest

from services.gateway.validation import parse
from shared.config import GatewaySettings
from shared.errors import BadRequest

LIMITS = GatewaySettings(max_messages=3)


def test_gateway_fields_are_stripped_and_the_rest_passes_untouched() -> None:
    raw = (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "capability": "code",'
           b' "cache": {"no-cache": true}, "fallbacks": ["a"], "guided_json": {"type": "object"}, "top_k": 5}')
    parsed = parse("chat", raw, LIMITS)
    assert parsed.capability == "code"
    assert parsed.cache == {"no-cache": True}
    assert parsed.body == {"model": "m", "messages": [{"role": "user", "content": "x"}],
                           "guided_json": {"type": "object"}, "top_k": 5}


@pytest.mark.parametrize(("kind", "raw", "param"), [
    ("chat", b'{"model": "m", "messages": [{"role": "u"}, {"role": "u"}, {"role": "u"}, {"role": "u"}]}',
     "messages"),
    ("chat", b'{"model": "m", "messages": [], "stream": false}', "messages"),
    ("completion", b'{"model": "m"}', "prompt"),
    ("embedding", b'{"model": "m", "input": []}', "input"),
    ("embedding", b'{"model": "m", "input": "x", "stream": true}', "stream"),
    ("chat", b'{"model": "m", "messages": [{"role": "u"}], "capability": 3}', "capability"),
    ("chat", b'{"model": 7, "messages": [{"role": "u"}]}', "model"),
    ("chat", b'{"model": "m", "messages": [{"role": "u"}], "temperature": "hot"}', "temperature"),
    ("chat", b'{"model": "m", "messages": [{"role": "u"}], "top_p": true}', "top_p"),
    ("chat", b'{"model": "m", "messages": [{"role": "u"}], "seed": 1.5}', "seed"),
    ("chat", b'{"model": "m", "messages": [{"role": "u"}], "stop": ["a", 3]}', "stop"),
    ("chat", b'{"model": "m", "messages": [{"role": "u"}], "tools": {"type": "function"}}', "tools"),
    ("chat", b'{"model": "m", "messages": [{"role": "u"}], "response_format": "json"}', "response_format"),
    ("completion", b'{"model": "m", "prompt": "x", "max_tokens": 0}', "max_tokens"),
])
def test_invalid_requests_name_the_parameter(kind: str, raw: bytes, param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(kind, raw, LIMITS)  # type: ignore[arg-type]
    assert caught.value.param == param


def test_standard_fields_of_the_right_type_pass_whatever_their_range() -> None:
    raw = (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 3, "top_p": 0.9,'
           b' "presence_penalty": -1.5, "seed": -7, "stop": "END", "tools": [],'
           b' "response_format": {"type": "json_object"}, "max_tokens": 8}')
    assert parse("chat", raw, LIMITS).body["temperature"] == 3
