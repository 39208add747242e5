"""The referral microsite: landing pages (``/r/{code}``), the claim form, share pages and link
previews, and the widget demo page. Templates and static files are in ``vouch.site``."""
