"""What other systems push in: the generic signed webhook (``/webhooks/inbound``) and the native
HubSpot, Salesforce and Stripe receivers (``/integrations/…``)."""
