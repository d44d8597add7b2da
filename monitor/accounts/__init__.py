"""Status-page accounts: users with one role each, password hashes, login sessions."""
