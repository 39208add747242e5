"""The REST surface: the redemption and conversion endpoints (``/api/…``), CSV reports
(``/reports/…``) and the OpenAPI document that describes them."""
