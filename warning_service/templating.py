"""The Jinja2 environments, made in one place: pages (HTML, autoescaped) and messages (sandboxed text).

Both are strict (an unknown variable is an error, never an empty string) and cached per templates folder,
so a template file is parsed once per process. Pages serialise the labels' read-only mappings with `tojson`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.sandbox import SandboxedEnvironment


def _plain(o: Any) -> Any:
    if isinstance(o, Mapping):
        return dict(o)
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def _dumps(o: Any, **kw: Any) -> str:
    return json.dumps(o, default=_plain, ensure_ascii=False, **kw)


@lru_cache(maxsize=8)
def page_environment(templates_dir: str) -> Environment:
    """HTML pages: autoescaped, strict, whitespace-trimmed."""
    env = Environment(loader=FileSystemLoader(templates_dir), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.policies["json.dumps_function"] = _dumps
    return env


@lru_cache(maxsize=8)
def message_environment(templates_dir: str, *, autoescape_html: bool = True) -> SandboxedEnvironment:
    """Message texts (SMS, voice, e-mail, loudspeaker, guidance): sandboxed — templates may come from a
    deployment's own folder —, strict, and autoescaped only for the e-mail's HTML part."""
    return SandboxedEnvironment(loader=FileSystemLoader(templates_dir), undefined=StrictUndefined,
                                autoescape=select_autoescape(["html"]) if autoescape_html else False,
                                trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False)
