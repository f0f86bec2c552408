"""Per-node progress on the terminal: a live bar on a TTY, one line per finished node otherwise."""

from __future__ import annotations

from typing import TextIO

BAR_WIDTH = 24


class ConsoleProgress:
    def __init__(self, stream: TextIO, live: bool):
        self.stream = stream
        self.live = live
        self.labels: dict[str, str] = {}
        self._last_drawn: tuple[str, int] | None = None

    def node_started(self, node_id: str, class_type: str, title: str) -> None:
        label = f"#{node_id} {class_type}" + (f" ({title})" if title and title != class_type else "")
        self.labels[node_id] = label
        if self.live:
            self._draw(f"{label} ...")

    def node_progress(self, node_id: str, value: float, total: float) -> None:
        if not self.live or not total:
            return
        filled = int(BAR_WIDTH * min(value / total, 1.0))
        # Redraw only when the bar moves: packs may report thousands of tiny steps.
        if self._last_drawn == (node_id, filled):
            return
        self._last_drawn = (node_id, filled)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self._draw(f"{self.labels.get(node_id, '#' + node_id)} [{bar}] {value:g}/{total:g}")

    def node_finished(self, node_id: str, status: str, seconds: float) -> None:
        line = f"{self.labels.get(node_id, '#' + node_id)}: {status} in {seconds:.3f}s"
        if self.live:
            self._draw(line)
            self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _draw(self, text: str) -> None:
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
