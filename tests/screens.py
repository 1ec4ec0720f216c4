"""Reading a terminal program's screen in tmux without racing it.

A key is sent, then the screen is read until it has changed and stopped changing, with a
deadline; a fixed pause instead lets a slow redraw on a busy machine be read as "nothing
happened", and the next key then skips past the field a test was looking for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

# Long enough for a redraw on a machine several times busier than it has cores.
REDRAW_TIMEOUT = 30.0
STEADY_READS = 0.1


def press_and_wait(read: Callable[[], str], press: Callable[[], None], timeout: float = REDRAW_TIMEOUT) -> str:
    """Press (send a key), then return the screen once it has changed and two reads in a row agree.

    A key that changes nothing on screen costs the whole ``timeout``: use it for keys that move
    the focus or edit a field, whose highlight or text always changes.
    """
    before = read()
    press()
    deadline = time.monotonic() + timeout
    screen = read()
    while screen == before and time.monotonic() < deadline:
        time.sleep(0.05)
        screen = read()
    while True:
        time.sleep(STEADY_READS)
        again = read()
        if again == screen or time.monotonic() > deadline:
            return again
        screen = again


def terminal_environment() -> dict[str, str]:
    """This process's environment for a program in a tmux pane of its own size.

    Without ``TMUX`` the pane's tmux is not taken for one the developer sits in. Without
    ``LINES`` and ``COLUMNS``, which a test runner may have set for its own output (pytest-xdist's
    workers have 80x24), curses sizes the form by the pane instead of by them: with them it drew
    an 80x24 form that the pane never showed.
    """
    return {key: value for key, value in os.environ.items() if key not in ("TMUX", "LINES", "COLUMNS")}
