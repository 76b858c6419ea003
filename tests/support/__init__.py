"""Reusable helpers for tests: real servers on 127.0.0.1 (registry, token server) and test PKI."""
