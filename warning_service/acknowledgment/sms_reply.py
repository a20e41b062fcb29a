"""SMS replies as people really type them: `1`, `１`, `收到`, `确认`, `好`, `ok`, a warning's code, `全部`.

Parsing is strict about meaning and lenient about form: full-width characters, spaces, punctuation and
polite words are fine, but a word we do not know (`不`, `未`, `没`) makes the reply not understood — "未收到"
must never count as "收到".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Literal

ACK_WORDS = ("确认收到", "收到确认", "已经收到", "已收到", "收到了", "收到啦", "收到", "已确认", "确认",
             "确定", "好的", "好", "明白", "知道了", "知道", "ok", "okay", "yes", "y", "是", "嗯")
ALL_WORDS = ("全部确认", "确认全部", "全部收到", "全部", "所有", "都收到", "all")
# Words that add nothing either way.
FILLER = ("回复", "谢谢", "谢", "您", "我", "了", "啦", "的", "呢", "吧", "请", "已", "均", "都")
_VOCAB = sorted({*ACK_WORDS, *ALL_WORDS, *FILLER}, key=len, reverse=True)
_TOKEN = re.compile(r"\d+|[^\d\s]+")
MAX_CODE_DIGITS = 6


@dataclass(frozen=True)
class Reply:
    """What the reply asks for: the most recent warning, every open one, or the warnings with these codes."""

    kind: Literal["ack", "all", "codes", "unclear"]
    codes: tuple[int, ...] = field(default=())


def normalize(text: str) -> str:
    """Full-width to half-width, lower case, every punctuation mark and symbol turned into a space."""
    folded = unicodedata.normalize("NFKC", text or "").lower()
    return "".join(c if c.isalnum() else " " for c in folded)


def _words(token: str) -> list[str] | None:
    """Split a run of letters into known words (longest first); None if anything is left over."""
    out: list[str] = []
    i = 0
    while i < len(token):
        word = next((w for w in _VOCAB if token.startswith(w, i)), None)
        if word is None:
            return None
        out.append(word)
        i += len(word)
    return out


def parse_reply(text: str) -> Reply:
    """Read an SMS reply; see the module docstring."""
    numbers: list[int] = []
    acked = every = False
    for token in _TOKEN.findall(normalize(text)):
        if token.isdigit():
            if len(token) > MAX_CODE_DIGITS:
                return Reply("unclear")
            numbers.append(int(token))
            continue
        words = _words(token)
        if words is None:
            return Reply("unclear")
        every = every or any(w in ALL_WORDS for w in words)
        acked = acked or any(w in ACK_WORDS for w in words)
    if every:
        return Reply("all")
    # "1" is what the message asked for when there was one open warning; codes start at 10.
    codes = tuple(dict.fromkeys(n for n in numbers if n != 1))
    if codes:
        return Reply("codes", codes)
    if numbers or acked:
        return Reply("ack")
    return Reply("unclear")
