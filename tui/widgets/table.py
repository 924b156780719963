"""A DataTable that updates in place: the viewport and the selected row stay put on refresh.

`DataTable.clear()` resets the scroll position and the cursor, so a table refilled every
two seconds jumps to the top and back (and rows that arrive above the viewport are missed).
`replace_rows` instead removes, updates and adds rows by key, puts them in the given order,
and keeps the cursor on the same key: at the top the new rows come into view; scrolled
down, the rows on screen stay where they were; either way the view moves as far as it
must to keep the selected row on screen. Vim keys and Home/End move the cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.coordinate import Coordinate
from textual.widgets import DataTable
from textual.widgets._data_table import RowKey, TwoWayDict


class StableTable(DataTable[Any]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g,home", "first", "Top", show=False),
        Binding("G,end", "last", "Bottom", show=False),
        Binding("ctrl+d", "page_down", "Page down", show=False),
        Binding("ctrl+u", "page_up", "Page up", show=False),
    ]

    class Resized(Message):
        """The table's width changed: a screen that sizes columns to fit re-lays them out."""

        def __init__(self, table: StableTable) -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> StableTable:
            return self.table

    def on_resize(self, event: events.Resize) -> None:
        self.post_message(self.Resized(self))

    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key.value
        except Exception:  # noqa: BLE001 - the cursor is past the rows
            return None

    def row_keys(self) -> list[str]:
        return [str(self._row_locations.get_key(i).value) for i in range(self.row_count)]

    def replace_rows(self, rows: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Show exactly `rows` (key, cells) in this order, without moving what the operator looks at."""
        selected = self.selected_key()
        old_keys = self.row_keys()
        old_y = self.scroll_y
        top_index = int(old_y)
        top_key = old_keys[top_index] if top_index < len(old_keys) else None
        wanted = {key for key, _ in rows}
        for key in old_keys:
            if key not in wanted:
                self.remove_row(key)
        columns = list(self.columns)
        # A fixed-width column needs no measuring. DataTable re-measures every cell of a column
        # when an updated cell got narrower (O(rows²) per column): with 100 rows whose age changes
        # on every refresh, that was most of an idle console's CPU.
        measure = [self.columns[c].auto_width for c in columns]
        changed = False
        for key, cells in rows:
            if key in self.rows:
                current = self.get_row(key)
                for col, (old, new) in enumerate(zip(current, cells)):
                    if str(old) != str(new) or getattr(old, "style", None) != getattr(new, "style", None):
                        self.update_cell(key, columns[col], new, update_width=measure[col])
                        changed = True
            else:
                self.add_row(*cells, key=key)
        new_keys = [key for key, _ in rows]
        if changed or new_keys != self.row_keys():
            self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(new_keys)})
            self._update_count += 1
            self.refresh()
        if selected in wanted:
            index = new_keys.index(selected)
        else:
            index = min(self.cursor_row, max(0, len(new_keys) - 1))
        if index != self.cursor_row:
            # no watcher: it would scroll the cursor into view, which is the jump we avoid
            self.set_reactive(DataTable.cursor_coordinate, Coordinate(index, self.cursor_column))
            self.refresh()
        target = old_y
        if old_y > 0 and top_key in wanted:
            target = old_y + new_keys.index(top_key) - top_index
        target = self._follow_cursor(target, index)
        if target != old_y:
            self.call_after_refresh(self.scroll_to, y=target, animate=False)

    def _follow_cursor(self, y: float, index: int) -> float:
        """The scroll offset nearest `y` that keeps row `index` on screen.

        Rows arriving above push the selected row down; left alone it went off screen while
        Enter, Space and C/R still acted on it. The view moves only as far as it must.
        """
        height = self.scrollable_content_region.height - (self.header_height if self.show_header else 0)
        if height <= 0 or not self.row_count:
            return y
        if index < y:
            return float(index)
        if index >= y + height:
            return float(index - height + 1)
        return y

    def action_first(self) -> None:
        if self.row_count:
            self.move_cursor(row=0)
            self.scroll_home(animate=False)

    def action_last(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1)
