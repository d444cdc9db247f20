"""The error type of the model package: a request the user can fix (an unknown name, weights that
are missing or do not fit). Front ends show it as one line (``bench``: exit code 2)."""


class UserError(Exception):
    """A problem with the user's input, said in one line."""
