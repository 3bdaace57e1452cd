"""Progress bars (monai_iunet.progress): drawn with the time left at a terminal or when forced, never otherwise."""

from __future__ import annotations

import io
import logging
import re

import pytest

from monai_iunet.errors import UserInputError
from monai_iunet.progress import PROGRESS_ENV, logging_beside_bars, progress_bar, progress_enabled

ETA = re.compile(r"\d+/\d+ \[\d\d:\d\d<\d\d:\d\d")  # tqdm's "n/total [elapsed<remaining": the time left


class Terminal(io.StringIO):
    """A stderr that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def _stderr(monkeypatch, stream: io.StringIO) -> io.StringIO:
    """Make ``stream`` the process's stderr (in the test itself: pytest resets ``sys.stderr`` after fixtures)."""
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    return stream


def test_auto_draws_at_a_terminal_only(monkeypatch):
    _stderr(monkeypatch, Terminal())
    assert progress_enabled() and progress_enabled("auto")
    assert not progress_enabled(stream=io.StringIO())
    for word in ("off", "0", "false", "no"):
        monkeypatch.setenv(PROGRESS_ENV, word)
        assert not progress_enabled(), word
    monkeypatch.setenv(PROGRESS_ENV, "on")
    assert progress_enabled(stream=io.StringIO())
    assert not progress_enabled(False) and progress_enabled(True, stream=io.StringIO())  # an argument wins


def test_a_wrong_word_says_which_words_work(monkeypatch):
    monkeypatch.setenv(PROGRESS_ENV, "sometimes")
    with pytest.raises(UserInputError, match=f"{PROGRESS_ENV} is 'sometimes'; use 'on', 'off' or 'auto'"):
        progress_enabled()
    with pytest.raises(UserInputError, match="progress is 'loud'"):
        progress_enabled("loud")


def test_bar_shows_count_and_time_left_at_a_terminal(monkeypatch):
    terminal = _stderr(monkeypatch, Terminal())
    assert list(progress_bar(range(3), desc="synthetic cases", unit="case")) == [0, 1, 2]
    text = terminal.getvalue()
    assert "synthetic cases" in text and ETA.search(text) and re.search(r"case/s|s/case", text)


def test_nothing_is_drawn_into_a_pipe_but_the_work_is_done(monkeypatch):
    pipe = _stderr(monkeypatch, io.StringIO())  # isatty() is False, as for a pipe or a log file
    bar = progress_bar(range(3), desc="synthetic cases")
    assert list(bar) == [0, 1, 2] and bar.disable
    with progress_bar(total=2) as manual:
        manual.update()
        manual.set_postfix_str("register")
    assert pipe.getvalue() == ""


def test_forced_on_draws_into_a_pipe(monkeypatch):
    pipe = _stderr(monkeypatch, io.StringIO())
    monkeypatch.setenv(PROGRESS_ENV, "on")
    list(progress_bar(range(2), desc="infer", unit="case"))
    assert ETA.search(pipe.getvalue())


def test_log_records_go_above_the_bar_while_it_is_drawn(monkeypatch):
    terminal = _stderr(monkeypatch, Terminal())
    root = logging.getLogger()
    handler = logging.StreamHandler(terminal)  # a console handler (on sys.stderr, where the bar is)
    # the only console handler: a bundle run earlier in the session may have left MONAI's stdout handler on the
    # root logger, and tqdm's redirection keeps only the first console handler it finds
    monkeypatch.setattr(root, "handlers", [handler])
    try:
        with logging_beside_bars(), progress_bar(total=2, desc="train") as bar:
            assert handler not in root.handlers  # replaced by tqdm's handler for as long as bars are drawn
            bar.update()
            logging.getLogger("monai_iunet.test").warning("epoch 1 done")
        assert handler in root.handlers
        with logging_beside_bars(enabled=False):
            assert handler in root.handlers
    finally:
        root.removeHandler(handler)
    assert "epoch 1 done\n" in terminal.getvalue()
