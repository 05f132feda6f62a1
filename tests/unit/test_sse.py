from shared.sse import DONE_EVENT, SSEParser, event


def test_events_split_across_reads_are_reassembled() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a"') == []
    assert parser.feed(b':1}\n') == []
    assert parser.feed(b"\ndata: [DONE]\n\n") == [b'{"a":1}', b"[DONE]"]
    assert not parser.pending


def test_crlf_comments_and_multiline_data() -> None:
    parser = SSEParser()
    out = parser.feed(b": keepalive\r\n\r\nevent: x\r\ndata:a\r\ndata: b\r\n\r\n")
    assert out == [b"a\nb"]


def test_unfinished_event_is_reported_pending() -> None:
    parser = SSEParser()
    parser.feed(b"data: {\"half\"")
    assert parser.pending


def test_framing_for_clients() -> None:
    assert event(b"{}") == b"data: {}\n\n"
    assert DONE_EVENT == b"data: [DONE]\n\n"
