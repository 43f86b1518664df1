"""The one error type users see: bad input, reported as one line, exit status 2."""


class InputError(ValueError):
    """Bad input from a user: a file, a row, a flag.

    The message is the whole report: what is wrong, where, and what is
    accepted. The CLI prints it on one line and exits with status 2.
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
