"""The one exception type users see: a sentence that says what is wrong and what to do."""


class FfsrError(Exception):
    """A problem the user can fix; the CLI prints the message alone and exits non-zero."""

    def __init__(self, message: str, *, log_path: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.log_path = log_path
        self.exit_code = exit_code

    def __str__(self) -> str:
        if self.log_path:
            return f"{self.message} (full log: {self.log_path})"
        return self.message
