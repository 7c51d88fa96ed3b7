"""Layer 4, security: who may connect and what they may claim. Host and Origin checks,
tokens, passwords, TURN credentials, look-alike names, rate and per-address limits,
token expiry.

May import: `protocol`, `settings`, `wire`, `actors`.
"""
