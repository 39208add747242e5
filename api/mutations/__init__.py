"""Mutations: each returns a ``<Verb><Noun>Payload`` with the object and typed ``errors``."""
