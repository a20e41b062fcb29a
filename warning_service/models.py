"""Imports every table so metadata (and alembic) sees the whole schema."""

from sqlmodel import SQLModel

from warning_service.acknowledgment.models import Acknowledgment, Feedback
from warning_service.auth.models import User
from warning_service.delivery.models import DeliveryAttempt, DispatchWorker, OutboxMessage
from warning_service.early_warning.models import EarlyWarning, WarningRevision, WarningTarget
from warning_service.ledger.models import LedgerEntry, LedgerPending
from warning_service.notice.models import Notice
from warning_service.person.models import Person
from warning_service.region.models import Region

metadata = SQLModel.metadata

__all__ = ["Acknowledgment", "DeliveryAttempt", "DispatchWorker", "EarlyWarning", "Feedback", "LedgerEntry",
           "LedgerPending",
           "Notice", "OutboxMessage", "Person", "Region", "User", "WarningRevision", "WarningTarget", "metadata"]
