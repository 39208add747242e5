"""The RevOps console (``/console``): its sign-in, pages, the lab (experiments and backtests)
and the charts they draw."""
