"""Money is integer minor units plus an ISO-4217 currency code."""

from __future__ import annotations

from vouch.core.errors import ValidationFailed

# Active ISO-4217 codes with their minor-unit exponent.
_MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AFN",
            "ALL",
            "AMD",
            "ANG",
            "AOA",
            "ARS",
            "AUD",
            "AWG",
            "AZN",
            "BAM",
            "BBD",
            "BDT",
            "BGN",
            "BMD",
            "BND",
            "BOB",
            "BRL",
            "BSD",
            "BTN",
            "BWP",
            "BYN",
            "BZD",
            "CAD",
            "CDF",
            "CHF",
            "CNY",
            "COP",
            "CRC",
            "CUP",
            "CVE",
            "CZK",
            "DKK",
            "DOP",
            "DZD",
            "EGP",
            "ERN",
            "ETB",
            "EUR",
            "FJD",
            "FKP",
            "GBP",
            "GEL",
            "GHS",
            "GIP",
            "GMD",
            "GTQ",
            "GYD",
            "HKD",
            "HNL",
            "HTG",
            "HUF",
            "IDR",
            "ILS",
            "INR",
            "IRR",
            "JMD",
            "KES",
            "KGS",
            "KHR",
            "KPW",
            "KYD",
            "KZT",
            "LAK",
            "LBP",
            "LKR",
            "LRD",
            "LSL",
            "MAD",
            "MDL",
            "MGA",
            "MKD",
            "MMK",
            "MNT",
            "MOP",
            "MRU",
            "MUR",
            "MVR",
            "MWK",
            "MXN",
            "MYR",
            "MZN",
            "NAD",
            "NGN",
            "NIO",
            "NOK",
            "NPR",
            "NZD",
            "PAB",
            "PEN",
            "PGK",
            "PHP",
            "PKR",
            "PLN",
            "QAR",
            "RON",
            "RSD",
            "RUB",
            "SAR",
            "SBD",
            "SCR",
            "SDG",
            "SEK",
            "SGD",
            "SHP",
            "SLE",
            "SOS",
            "SRD",
            "SSP",
            "STN",
            "SVC",
            "SYP",
            "SZL",
            "THB",
            "TJS",
            "TMT",
            "TOP",
            "TRY",
            "TTD",
            "TWD",
            "TZS",
            "UAH",
            "USD",
            "UYU",
            "UZS",
            "VES",
            "WST",
            "XCD",
            "XCG",
            "YER",
            "ZAR",
            "ZMW",
            "ZWG",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}

CURRENCIES: frozenset[str] = frozenset(_MINOR_UNITS)
MAX_AMOUNT_MINOR = 10**15  # a quadrillion minor units: beyond any real deal, inside BIGINT


def check_currency(code: str, *, field: str = "currency") -> str:
    """Return the upper-cased code, or raise if it is not an active ISO-4217 currency."""
    upper = code.strip().upper()
    if upper not in CURRENCIES:
        raise ValidationFailed(f"'{code[:8]}' is not an ISO-4217 currency code", field=field)
    return upper


def check_amount(
    amount_minor: int, *, field: str = "amountMinor", allow_negative: bool = False
) -> int:
    """Amounts are whole minor units, bounded, and non-negative unless stated."""
    if not allow_negative and amount_minor < 0:
        raise ValidationFailed("amount must not be negative", field=field)
    if abs(amount_minor) > MAX_AMOUNT_MINOR:
        raise ValidationFailed("amount is out of range", field=field)
    return amount_minor


def minor_unit_exponent(currency: str) -> int:
    return _MINOR_UNITS[currency]


def format_money(amount_minor: int, currency: str) -> str:
    """Human-readable amount, e.g. ``USD 25.00``."""
    exp = _MINOR_UNITS.get(currency, 2)
    if exp == 0:
        return f"{currency} {amount_minor:,}"
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exp)
    return f"{sign}{currency} {whole:,}.{frac:0{exp}d}"
