"""Who is acting: carried into services for scope checks and the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from warning_service.region.scope import Scope


@dataclass(frozen=True)
class Actor:
    name: str  # "user:duty", "system:cap-relay", "person:+8613…"
    scope_path: str  # region subtree the actor may touch ("/33/" for the province)
    scope_code: str
    user_id: int | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.scope_path)

    def covers(self, path: str) -> bool:
        return self.scope.covers(path)
