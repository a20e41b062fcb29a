"""A region subtree as a scope: what a user may see and act on, and what a warning covers.

Region paths are materialized ("/33/3310/331081/"), so "inside the subtree" is a prefix test in Python and
a half-open range in SQL: [path, path + "\\x7f") holds exactly the paths that start with `path`, because
"\\x7f" sorts after every character a code or separator uses — and a range is one index range scan where
LIKE 'path%' would depend on collation. The rule is written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, false, or_

PAST_SUBTREE = "\x7f"


@dataclass(frozen=True)
class Scope:
    path: str  # "/33/3310/331081/"

    def covers(self, path: str) -> bool:
        """The region at `path` lies inside this subtree (the root itself included)."""
        return path.startswith(self.path)

    def overlaps(self, path: str) -> bool:
        """Either subtree contains the other."""
        return path.startswith(self.path) or self.path.startswith(path)

    @property
    def bounds(self) -> tuple[str, str]:
        """Half-open [low, high) range of the paths inside the subtree."""
        return self.path, self.path + PAST_SUBTREE

    def predicate(self, path_column: Any) -> Any:
        """SQL: `path_column` lies inside this subtree."""
        low, high = self.bounds
        return and_(path_column >= low, path_column < high)

    @staticmethod
    def any_of(path_column: Any, paths: Iterable[str]) -> Any:
        """SQL: `path_column` lies inside any of the subtrees rooted at `paths` (false for none)."""
        conds = [Scope(p).predicate(path_column) for p in paths]
        return or_(*conds) if conds else false()
