"""Operators: accounts with roles, argon2 passwords, console sessions and API tokens."""
