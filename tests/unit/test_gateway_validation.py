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
])
def test_invalid_requests_name_the_parameter(kind: str, raw: bytes, param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse(kind, raw, LIMITS)  # type: ignore[arg-type]
    assert caught.value.param == param
