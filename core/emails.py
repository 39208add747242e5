"""Email validation and normalisation for deduplication and self-referral checks."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

from vouch.core.errors import ValidationFailed

# Providers that ignore dots in the local part and treat +tags as the same mailbox.
_DOT_INSENSITIVE = frozenset({"gmail.com", "googlemail.com"})
_PLUS_TAG_PROVIDERS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "icloud.com",
        "me.com",
        "fastmail.com",
        "protonmail.com",
        "proton.me",
        "yahoo.com",
    }
)
_DOMAIN_ALIASES = {"googlemail.com": "gmail.com"}

# A small curated list; operators extend it through program settings.
DISPOSABLE_DOMAINS = frozenset(
    {
        "mailinator.com",
        "guerrillamail.com",
        "10minutemail.com",
        "tempmail.com",
        "temp-mail.org",
        "yopmail.com",
        "trashmail.com",
        "getnada.com",
        "sharklasers.com",
        "dispostable.com",
        "throwawaymail.com",
        "maildrop.cc",
        "fakeinbox.com",
        "mintemail.com",
        "mohmal.com",
    }
)

MAX_EMAIL_LENGTH = 254


def check_email(value: str, *, field: str = "email") -> str:
    """Return the email in canonical syntax (domain lower-cased) or raise ``ValidationFailed``."""
    if len(value) > MAX_EMAIL_LENGTH:
        raise ValidationFailed("email address is too long", field=field)
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(f"not a valid email address: {exc}", field=field) from exc
    return str(result.normalized)


def normalize_email(value: str) -> str:
    """The identity of a mailbox: lower-case, provider aliases folded, dots and +tags ignored
    where the provider ignores them."""
    local, _, domain = value.strip().lower().rpartition("@")
    domain = _DOMAIN_ALIASES.get(domain, domain)
    if domain in _PLUS_TAG_PROVIDERS:
        local = local.split("+", 1)[0]
    if domain in _DOT_INSENSITIVE:
        local = local.replace(".", "")
    return f"{local}@{domain}"


def email_domain(value: str) -> str:
    return value.rpartition("@")[2].lower()


def is_disposable(value: str) -> bool:
    return email_domain(value) in DISPOSABLE_DOMAINS
