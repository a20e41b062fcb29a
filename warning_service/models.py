"""Imports every table so metadata (and alembic) sees the whole schema."""

from sqlmodel import SQLModel

from warning_service.acknowledgment.models import Acknowledgment, Feedback, InboundEvent
from warning_service.auth.models import User
from warning_service.broadcast.models import BroadcastPlay, BroadcastReceipt, Terminal
from warning_service.delivery.models import DeliveryAttempt, DispatchWorker, OutboxMessage
from warning_service.drills.models import Drill
from warning_service.duty.models import DutyMember, DutyShift
from warning_service.early_warning.models import (
    EarlyWarning,
    IssueRequest,
    WarningRevision,
    WarningSignoff,
    WarningTarget,
)
from warning_service.evacuation.models import (
    DangerZone,
    EvacThreshold,
    EvacuationRelease,
    EvacuationTask,
    Household,
    Shelter,
    SpecialNotice,
    SpecialPerson,
    SpecialPlace,
)
from warning_service.exports.models import ExportJob
from warning_service.ledger.models import LedgerEntry, LedgerPending
from warning_service.notice.models import EscalationDigest, Notice
from warning_service.person.models import Person
from warning_service.region.models import Region
from warning_service.response.models import EmergencyResponse, ResponseChange, ResponseDemand, ResponseWarning

metadata = SQLModel.metadata

__all__ = ["Acknowledgment", "DeliveryAttempt", "EarlyWarning", "Feedback", "InboundEvent", "IssueRequest",
           "LedgerEntry", "LedgerPending", "Notice", "OutboxMessage", "Person", "Region", "User", "WarningRevision",
           "WarningTarget", "metadata"]
# 转移避险 (evacuation/)
__all__ += ["DangerZone", "EvacThreshold", "EvacuationRelease", "EvacuationTask", "Household", "Shelter",
            "SpecialNotice", "SpecialPerson", "SpecialPlace"]
# 值班 and 应急响应 (duty/, response/)
__all__ += ["DutyMember", "DutyShift", "EmergencyResponse", "ResponseChange", "ResponseDemand", "ResponseWarning"]
# Background exports (exports/)
__all__ += ["ExportJob"]
# Escalation digests (notice/)
__all__ += ["EscalationDigest"]
# The delivery engine's workers (delivery/)
__all__ += ["DispatchWorker"]
# 审核签发 (early_warning/signoff.py)
__all__ += ["WarningSignoff"]
# 演练 and 号码核验 (drills/)
__all__ += ["Drill"]
# 应急广播 (broadcast/)
__all__ += ["BroadcastPlay", "BroadcastReceipt", "Terminal"]
