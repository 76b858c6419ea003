"""The threat model's tests, one module per threat: see README.md here and docs/security.md."""
