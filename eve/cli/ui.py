"""`eve ui`: the Textual operator console (eve.tui, loaded lazily so `eve --help` stays fast)."""

from __future__ import annotations
