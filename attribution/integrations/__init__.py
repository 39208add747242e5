"""Native integrations: HubSpot (webhooks + CRM v3 fetches), Salesforce (Outbound Messages) and
Stripe (webhooks). Each provider event is deduplicated by the provider's own id
(``integration_events``) and applied in one transaction through the same domain functions as
the generic endpoints (``attribution.opportunities``, ``revenue``, ``redemptions``)."""
