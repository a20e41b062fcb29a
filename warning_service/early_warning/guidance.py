"""Default 防御指南 (defence guidance) per hazard and level, from templates/guidance/."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from warning_service.early_warning.models import HAZARD_ZH, LEVEL_ZH


@lru_cache(maxsize=4)
def _env(templates_dir: str) -> SandboxedEnvironment:
    return SandboxedEnvironment(loader=FileSystemLoader(templates_dir), undefined=StrictUndefined,
                                trim_blocks=True, lstrip_blocks=True, autoescape=False)


def default_instruction(templates_dir: Path, hazard: str, level: str) -> str:
    env = _env(str(templates_dir))
    template = env.select_template([f"guidance/{hazard}.j2", "guidance/default.j2"])
    text = template.render(hazard=hazard, hazard_zh=HAZARD_ZH[hazard], level=level, level_zh=LEVEL_ZH[level])
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())
