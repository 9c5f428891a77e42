"""Errors a user can cause, each with a message written for that user.

Adapters catch :class:`UserError` at their edge and show ``str(error)``; the worker never sees them.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every error whose message is meant for the person who caused it."""


class BadRequest(UserError):
    """A command that cannot be turned into a request (bad flag, value out of range...)."""

    def __init__(self, message: str, *, flag: str | None = None) -> None:
        super().__init__(message)
        self.flag = flag


class QueueFull(UserError):
    """The user's own queue, or the global one, has no room right now."""


class RateLimited(UserError):
    """The user (or their server/subreddit) is asking faster than the configured rate."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Forbidden(UserError):
    """The user may not do this here (permissions, DMs disabled, someone else's job...)."""


class Banned(UserError):
    """The prompt matches a ban-list entry."""


class NotFound(UserError):
    """No job (or result) with that id."""


class ModelLoadError(Exception):
    """The configured model cannot be loaded; the message says what to do about it."""


class Unsupported(Exception):
    """A job asked its model for something the loaded pipeline cannot do; the message is for its owner.

    Requests are checked against what a model can do before they are queued; this is the worker's last
    word when a model turned out, once loaded, to lack it (a generic pipeline without an image-to-image
    form, say): the job fails saying so, never "failed on our side".
    """
