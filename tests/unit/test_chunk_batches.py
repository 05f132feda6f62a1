import msgspec

from services.workers.backend import chunk_batches


def test_one_reads_chunks_share_a_frame_in_order() -> None:
    payloads = [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert [[bytes(r) for r in batch] for batch in chunk_batches(payloads, 1000)] == [payloads]


def test_a_batch_never_exceeds_the_limit_unless_one_payload_alone_does() -> None:
    payloads = [b"a" * 40, b"b" * 40, b"c" * 40, b"d" * 200]
    batches = chunk_batches(payloads, 100)
    assert [[bytes(r) for r in batch] for batch in batches] == [[b"a" * 40, b"b" * 40], [b"c" * 40], [b"d" * 200]]
    assert all(isinstance(r, msgspec.Raw) for batch in batches for r in batch)


def test_nothing_read_is_no_frame() -> None:
    assert chunk_batches([], 100) == []


def test_a_limit_of_zero_is_one_payload_per_frame() -> None:
    assert [len(batch) for batch in chunk_batches([b"{}", b"{}", b"{}"], 0)] == [1, 1, 1]
