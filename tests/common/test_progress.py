"""Progress bars refresh in place on a terminal and rarely in a log file."""

from __future__ import annotations

import io
import time

import pytest

from robustrl.common.progress import LOG_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_on_a_terminal_refreshes_often_and_one_in_a_file_rarely(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTRL_PROGRESS_INTERVAL", raising=False)
    with progress_bar(total=10, file=_Terminal()) as on_terminal, progress_bar(total=10, file=io.StringIO()) as logged:
        assert on_terminal.mininterval == pytest.approx(0.1)
        assert logged.mininterval == LOG_INTERVAL_S


def test_a_logged_bar_writes_few_lines_for_many_updates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ROBUSTRL_PROGRESS_INTERVAL", raising=False)
    out, shown = io.StringIO(), _Terminal()
    for stream in (out, shown):
        with progress_bar(total=4, file=stream, miniters=1) as bar:
            for _ in range(4):
                time.sleep(0.15)
                bar.update(1)
    # in a file: the first draw and the final one; on a terminal every update is drawn
    assert out.getvalue().count("\r") <= 3 < shown.getvalue().count("\r")
    assert "4/4" in out.getvalue()


def test_the_interval_follows_the_environment_and_rejects_garbage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROBUSTRL_PROGRESS_INTERVAL", "2.5")
    with progress_bar(total=1, file=io.StringIO()) as bar:
        assert bar.mininterval == 2.5
    assert progress_bar(total=1, file=io.StringIO(), mininterval=7).mininterval == 7
    monkeypatch.setenv("ROBUSTRL_PROGRESS_INTERVAL", "often")
    with pytest.raises(ValueError, match="ROBUSTRL_PROGRESS_INTERVAL"):
        progress_bar(total=1, file=io.StringIO())
