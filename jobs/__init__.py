"""Scheduled work Vouch owns: what runs when (``definitions``), the run history (``runs``) and
the pgqueuer-backed scheduler that runs each job exactly once across every worker
(``scheduler``)."""
