"""``python -m chaos.bench``: bad arguments and an empty measurement give one clear line."""

from __future__ import annotations

import pytest

from chaos import bench


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--duration", "0"], "argument --duration: expected seconds > 0, found '0'"),
        (["--duration", "nan"], "expected seconds > 0, found 'nan'"),
        (["--duration", "x"], "expected seconds > 0, found 'x'"),
        (["--repeat", "0"], "argument --repeat: expected an integer >= 1, found '0'"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        bench.main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


async def test_a_window_with_no_request_is_a_clear_error(echo_port: int) -> None:
    # The window closes before the first request: nothing to take a median of.
    with pytest.raises(bench.BenchError, match=r"no 1 KB x1 direct request completed in 1e-09 s"):
        await bench._measure("direct", echo_port, bench.KB, 1, 1e-9, None)
