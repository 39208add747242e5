"""Typed domain errors: the domain raises them, only the edge turns them into answers."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    CONFLICT = "CONFLICT"
    FORBIDDEN = "FORBIDDEN"
    ALREADY_REDEEMED = "ALREADY_REDEEMED"
    SELF_REFERRAL = "SELF_REFERRAL"
    DUPLICATE = "DUPLICATE"
    INACTIVE = "INACTIVE"
    EXPIRED = "EXPIRED"
    RATE_LIMITED = "RATE_LIMITED"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    IDEMPOTENCY_MISMATCH = "IDEMPOTENCY_MISMATCH"
    CAPPED = "CAPPED"


class DomainError(Exception):
    """An expected failure a user can act on."""

    code: ErrorCode = ErrorCode.INVALID

    def __init__(self, message: str, *, field: str | None = None, code: ErrorCode | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code


class ValidationFailed(DomainError):
    code = ErrorCode.INVALID


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class Conflict(DomainError):
    code = ErrorCode.CONFLICT


class Forbidden(DomainError):
    code = ErrorCode.FORBIDDEN


class InvalidTransition(DomainError):
    code = ErrorCode.INVALID_TRANSITION
