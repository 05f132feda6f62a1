from services.gateway.token_throughput import TokenRate


def test_rate_is_tokens_in_the_window_over_its_length() -> None:
    rate = TokenRate(window_s=10)
    rate.add(50, now=100.2)
    rate.add(50, now=100.9)
    rate.add(100, now=105.0)
    assert rate.per_second(105.5) == 20.0


def test_old_seconds_fall_out_of_the_window_on_both_sides_of_the_edge() -> None:
    rate = TokenRate(window_s=10)
    rate.add(100, now=100.0)
    assert rate.per_second(109.99) == 10.0
    assert rate.per_second(110.0) == 0.0
