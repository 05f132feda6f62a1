import pytest

from shared import subjects


@pytest.mark.parametrize("bad", ["", "a.b", "a*", ">", "a b", "a\tb", "a\r", "a\nb", "\x00"])
def test_builders_reject_tokens_that_would_change_routing(bad: str) -> None:
    with pytest.raises(subjects.InvalidSubjectToken):
        subjects.work(bad)
    with pytest.raises(subjects.InvalidSubjectToken):
        subjects.inbox("_INBOX.proc", bad)
    with pytest.raises(subjects.InvalidSubjectToken):
        subjects.inbox_prefix(bad or "a.b")


def test_builders_compose_the_documented_subjects() -> None:
    assert subjects.work("llama_cpp_python") == "aiub.work.llama_cpp_python"
    assert subjects.worker_queue("vllm") == "worker.vllm"
    assert subjects.outcome("ollama") == "aiub.events.outcome.ollama"
    assert subjects.load("ollama") == "aiub.load.ollama"
    assert subjects.inbox("_INBOX.P", "A") == "_INBOX.P.A"
    assert subjects.inbox_prefix(None) == "_INBOX"
    assert subjects.inbox_prefix("client") == "_INBOX.client"
    assert subjects.last_token("_INBOX.P.A") == "A"
