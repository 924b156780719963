"""`python -m eve.cli.docgen > docs/cli.md`: the CLI reference, generated from the Typer app.

Docs that drift from the CLI are worse than none, so the reference is the app's own help
text; a test regenerates it and fails when docs/cli.md is stale.
"""

from __future__ import annotations

import re
from typing import Any

import typer.main

from eve.cli import app


def _unstyle(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _walk(cmd: Any, path: list[str]) -> list[tuple[list[str], Any]]:
    """Commands depth-first; duck-typed because Typer may vendor its own click."""
    out = [(path, cmd)]
    if hasattr(cmd, "commands"):
        for name in sorted(cmd.commands):
            out += _walk(cmd.commands[name], [*path, name])
    return out


def render() -> str:
    root = typer.main.get_command(app)
    lines = ["# eve CLI reference", "",
             "Generated from the Typer app by `python -m eve.cli.docgen > docs/cli.md`; do not edit by hand.", ""]
    for path, cmd in _walk(root, ["eve"]):
        if getattr(cmd, "hidden", False):
            continue
        ctx = cmd.context_class(cmd, info_name=" ".join(path))
        lines += [f"## `{' '.join(path)}`", ""]
        if cmd.help:
            lines += [_unstyle(cmd.help).strip(), ""]
        lines += ["```", " ".join(cmd.collect_usage_pieces(ctx)).join([f"Usage: {' '.join(path)} ", ""]), "```", ""]
        params = [p for p in cmd.get_params(ctx) if p.name not in ("help", "install_completion", "show_completion")]
        rows = []
        for p in params:
            record = p.get_help_record(ctx)
            if record is None:
                if p.param_type_name == "argument":
                    rows.append((p.human_readable_name, "argument"))
                continue
            rows.append((record[0], " ".join(record[1].split())))
        if rows:
            lines += ["| option | meaning |", "|---|---|"]
            lines += [f"| `{name}` | {text.replace('|', '/')} |" for name, text in rows]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
