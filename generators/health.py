"""What is wrong right now, by component: the one place ``/healthz`` reads.

Each part that can stop the bot from serving (a platform's login, Redis and its consumer groups, a model
that must serve) reports its own problem here and clears it when it recovers; the web server answers
503 with the reasons while any is set. A change is logged once, not on every retry, so an outage that
lasts an hour is two lines, not thousands.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


class Health:
    """Problems by component name; healthy when there are none."""

    def __init__(self) -> None:
        self._problems: dict[str, str] = {}

    def report(self, component: str, problem: str | None) -> None:
        """Set ``component``'s problem (``None``: it is fine now); logs only when the state changes."""
        old = self._problems.get(component)
        if problem == old:
            return
        if problem is None:
            del self._problems[component]
            log.info("%s recovered", component)
        else:
            self._problems[component] = problem
            log.warning("%s: %s", component, problem)

    @property
    def problems(self) -> dict[str, str]:
        """A copy of what is wrong now, by component."""
        return dict(self._problems)

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self._problems
