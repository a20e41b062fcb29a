"""Region hierarchy browsing, inside the caller's scope."""

from __future__ import annotations

from fastapi import APIRouter, Query

from warning_service.deps import Reader, SessionDep
from warning_service.region import service
from warning_service.region.models import RegionPublic

router = APIRouter(prefix="/api/v1/regions", tags=["regions"])


class RegionFound(RegionPublic):
    full_name: str  # 浙江省/台州市/温岭市/太平街道: tells apart two villages of one name


@router.get("/search", response_model=list[RegionFound])
async def search_regions(principal: Reader, session: SessionDep, q: str = Query(min_length=1, max_length=50),
                         limit: int = Query(20, ge=1, le=100)) -> list[RegionFound]:
    """Regions in your scope whose Chinese name contains `q` (the issue form's region picker)."""
    found = await service.search(session, scope_path=principal.scope.path, q=q.strip(), limit=limit)
    names = await service.region_paths(session, [r.code for r in found])
    return [RegionFound(**RegionPublic.model_validate(r, from_attributes=True).model_dump(),
                        full_name=names.get(r.code, r.name)) for r in found]


@router.get("/{code}", response_model=RegionPublic)
async def get_region(code: str, principal: Reader, session: SessionDep) -> RegionPublic:
    """One region."""
    region = await service.get(session, code=code)
    principal.require_covers(region)
    return RegionPublic.model_validate(region, from_attributes=True)


@router.get("/{code}/children", response_model=list[RegionPublic])
async def get_children(code: str, principal: Reader, session: SessionDep) -> list[RegionPublic]:
    """The regions directly below one region."""
    principal.require_covers(await service.get(session, code=code))
    return [RegionPublic.model_validate(r, from_attributes=True) for r in await service.children(session, code=code)]


@router.get("/{code}/descendants", response_model=list[RegionPublic])
async def get_descendants(code: str, principal: Reader, session: SessionDep,
                          level: list[str] | None = Query(None), limit: int = Query(1000, le=10_000)
                          ) -> list[RegionPublic]:
    """Every region below one region, optionally of given levels (one range scan)."""
    principal.require_covers(await service.get(session, code=code))
    return [RegionPublic.model_validate(r, from_attributes=True)
            for r in await service.descendants(session, code=code, levels=level, limit=limit)]
