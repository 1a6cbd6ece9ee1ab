"""Errors the CLI reports to a person, each with its exit code (docs/cli.md lists them)."""

from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1          # something failed (the message says what); also some files failed in a sync
EXIT_USAGE = 2           # wrong command line (click's own code)
EXIT_NOT_LOGGED_IN = 3   # no credentials, or the server refused the device's token
EXIT_OFFLINE = 4         # the server could not be reached or did not answer
EXIT_REFUSED = 5         # the plan or the quota refuses it (403, 413)
EXIT_CONFLICTS = 6       # sync finished, conflicts are left for `osmcloud resolve`
EXIT_INTERRUPTED = 130   # Ctrl-C: what was finished is kept, the next sync resumes


class CliError(Exception):
    exit_code = EXIT_FAILED
    code = "failed"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or {}
        if code:
            self.code = code


class NotLoggedIn(CliError):
    exit_code, code = EXIT_NOT_LOGGED_IN, "not_logged_in"


class Offline(CliError):
    exit_code, code = EXIT_OFFLINE, "offline"


class Refused(CliError):
    """The plan (403) or the quota (413) refuses it."""
    exit_code, code = EXIT_REFUSED, "refused"


class VersionConflict(CliError):
    """The server's 409: the cloud head is not the version the request was based on.
    `head` is the current head (None when the file has no version)."""
    code = "version_conflict"

    @property
    def head(self) -> dict[str, Any] | None:
        return self.details.get("head")


class NotFound(CliError):
    code = "not_found"


class BadInput(CliError):
    exit_code, code = EXIT_USAGE, "bad_input"
