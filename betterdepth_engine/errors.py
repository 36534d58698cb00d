"""User-facing errors: a stable code, a message saying what was wrong, a hint saying what to do.

The CLI prints them without a traceback and exits non-zero; the server returns them as JSON.
"""


class BetterDepthError(Exception):
    """An error the user can act on."""

    # Stable codes shared by the CLI, the server protocol and the Blender add-on.
    BAD_IMAGE = "BAD_IMAGE"
    BAD_INPUT = "BAD_INPUT"
    BAD_DEPTH = "BAD_DEPTH"
    BASE_FILE_MISSING = "BASE_FILE_MISSING"
    BASE_FILE_MISMATCH = "BASE_FILE_MISMATCH"
    MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
    BAD_MODEL = "BAD_MODEL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    CANCELLED = "CANCELLED"
    OUTPUT_ERROR = "OUTPUT_ERROR"

    def __init__(self, code: str, message: str, hint: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "hint": self.hint}

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message
