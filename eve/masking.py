"""Masking secret values out of what an agent prints (#19).

An org's secrets are in its agent's environment, and a hostile or careless agent may
print them. Before anything an agent produced is stored — events as they stream, the
result's output, summary and error — every occurrence of a secret's value becomes
`***NAME***`. Values shorter than MIN_LEN are not masked (masking "1" would mangle every
number; such values are not secrets worth the name and are refused when set).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

MIN_LEN = 6


class Masker:
    def __init__(self, secrets: Mapping[str, str]) -> None:
        # longest first, so a value that contains another is masked whole
        self._pairs = sorted(((v, f"***{k}***") for k, v in secrets.items() if len(v) >= MIN_LEN),
                             key=lambda p: -len(p[0]))

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def text(self, s: str) -> str:
        for value, label in self._pairs:
            if value in s:
                s = s.replace(value, label)
        return s

    def any(self, obj: Any) -> Any:
        """The same JSON-like structure with every string (keys too) masked."""
        if not self._pairs:
            return obj
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.any(k): self.any(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return [self.any(v) for v in obj]
        return obj

    def wrap(self, emit: Callable[[str, dict[str, Any]], Awaitable[None]]
             ) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
        if not self._pairs:
            return emit

        async def masked(kind: str, data: dict[str, Any]) -> None:
            await emit(kind, self.any(data))
        return masked

    def outcome(self, outcome: Any) -> Any:
        """An Outcome (eve.models) with output, summary and error masked."""
        if not self._pairs:
            return outcome
        return dataclasses.replace(outcome, output=self.any(outcome.output), summary=self.any(outcome.summary),
                                   error=self.any(outcome.error))
