"""The grammar's one error: a spec that does not parse, naming the field and what is wrong."""

from __future__ import annotations


class SpecError(ValueError):
    """A malformed spec; `field` names where (e.g. "arch.nb201"). The message reads
    "field: detail", which is also what the server answers (INVALID_ARGUMENT)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field, self.detail = field, detail
        self.message = f"{field}: {detail}"

    def __reduce__(self) -> tuple:
        # Exception's default pickling passes only the message back to __init__.
        return type(self), (self.field, self.detail)


def quote(token: str, limit: int = 60) -> str:
    """A bad token as an error message shows it: cut short, since a spec may be long."""
    return repr(token if len(token) <= limit else token[:limit] + "...")
