from __future__ import annotations

import pytest

from vouch.core.emails import check_email, is_disposable, normalize_email
from vouch.core.errors import ValidationFailed
from vouch.core.money import check_amount, check_currency, format_money


def test_normalize_email_folds_provider_aliases() -> None:
    assert normalize_email("Ada.Lovelace+ref@GMail.com") == "adalovelace@gmail.com"
    assert normalize_email("ada.lovelace@googlemail.com") == "adalovelace@gmail.com"
    assert normalize_email("Ada.Lovelace+x@outlook.com") == "ada.lovelace@outlook.com"
    assert normalize_email("Ada.Lovelace+x@acme.io") == "ada.lovelace+x@acme.io"


def test_check_email() -> None:
    assert check_email(" ada@Example.COM ") == "ada@example.com"
    for bad in ["nope", "a@", "@b.com", "a" * 300 + "@x.com"]:
        with pytest.raises(ValidationFailed):
            check_email(bad)
    assert is_disposable("x@mailinator.com")


def test_money() -> None:
    assert check_currency("usd") == "USD"
    with pytest.raises(ValidationFailed):
        check_currency("XXX")
    with pytest.raises(ValidationFailed):
        check_amount(-1)
    assert check_amount(-5, allow_negative=True) == -5
    assert format_money(123456, "USD") == "USD 1,234.56"
    assert format_money(500, "JPY") == "JPY 500"
