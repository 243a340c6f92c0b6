"""Errors that reach the user as one clear line instead of a traceback."""


class UserInputError(Exception):
    """Bad input from the user (a manifest row, a path, an option). The message is shown as is."""
