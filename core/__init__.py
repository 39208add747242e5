"""Vouch core: settings, database engine, codecs, errors and the clock. Depends on nothing else."""
