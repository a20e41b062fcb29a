"""防御指南 (defence guidance) per hazard and level, from templates/guidance/.

Two forms: the full numbered guidance (`<hazard>.j2`, for e-mail, the acknowledgment page and CAP
`instruction`) and the short lines of `lines.toml` — `duty` for responsible persons' SMS and voice,
`public` for village loudspeakers — so every level carries its own words, never a lower level's.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from warning_service.early_warning.models import HAZARD_ZH, LEVEL_ZH, Hazard, Level


@dataclass(frozen=True)
class LevelLines:
    duty: str    # what the responsible person must do now (SMS, voice)
    public: str  # what residents are told on the loudspeaker


@lru_cache(maxsize=4)
def _env(templates_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=FileSystemLoader(templates_dir), undefined=StrictUndefined,
                                trim_blocks=True, lstrip_blocks=True, autoescape=False)


def default_instruction(templates_dir: Path, hazard: str, level: str) -> str:
    """The full numbered guidance for a hazard and level; items end in '。', never in ';'."""
    env = _env(str(templates_dir))
    template = env.select_template([f"guidance/{hazard}.j2", "guidance/default.j2"])
    text = template.render(hazard=hazard, hazard_zh=HAZARD_ZH[hazard], level=level, level_zh=LEVEL_ZH[level])
    lines = (re.sub(r"[;；,，、\s]+$", "", line.strip()) for line in text.strip().splitlines())
    return "\n".join(line + ("" if line[-1] in "。！？" else "。") for line in lines if line)


@lru_cache(maxsize=4)
def _lines_table(path: str, mtime: float) -> dict[str, dict[str, dict[str, str]]]:
    with open(path, "rb") as f:
        return tomllib.load(f)


def level_lines(templates_dir: Path, hazard: str, level: str, *, hazard_zh: str | None = None) -> LevelLines:
    """The short `duty` and `public` lines for a hazard and level (the hazard's own, else the default's)."""
    path = Path(templates_dir) / "guidance" / "lines.toml"
    table = _lines_table(str(path), path.stat().st_mtime)
    entry = table.get(hazard, {}).get(level) or table["default"][level]
    name = hazard_zh or HAZARD_ZH.get(hazard, hazard)
    return LevelLines(duty=entry["duty"].format(hazard=name), public=entry["public"].format(hazard=name))


def check_lines(templates_dir: Path) -> list[str]:
    """Problems in lines.toml (a missing default level, a duty line too long for two SMS), for tests and start-up."""
    path = Path(templates_dir) / "guidance" / "lines.toml"
    table = _lines_table(str(path), path.stat().st_mtime)
    problems = [f"default.{lv}: missing" for lv in Level if lv.value not in table.get("default", {})]
    for hazard in Hazard:
        for lv in Level:
            if lv.value in table.get("default", {}):
                lines = level_lines(templates_dir, hazard.value, lv.value)
                if len(lines.duty) > 20:
                    problems.append(f"{hazard.value}.{lv.value}.duty: {len(lines.duty)} characters, keep within 20")
    return problems
