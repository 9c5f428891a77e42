"""The Reddit adapter: reads mentions, submits jobs, and answers each comment exactly once.

A mention under a picture uploaded to Reddit remixes that picture (see ``_media``); under a text post
or a link to a page, it draws from the prompt alone.

Every item is in the ledger before the bot acts on it, and every job carries its comment's fullname,
so whatever a previous run left half done is finished on start: items whose job was never submitted
are submitted (once: a job already in the store is adopted), finished jobs are answered, owed
refusals are sent, and replies that may have landed are looked for before posting again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import replace

import asyncpraw
from asyncpraw.models import Comment, Message

from bot.addresses import comment_of, reddit_comment
from bot.jobs import JobService
from bot.reddit._intake import Item, command_of, names, screen
from bot.reddit._ledger import Entry, Ledger, State
from bot.reddit._limits import Limits
from bot.reddit._media import Picture, download, picture_of
from bot.reddit._posts import ImagePoster
from bot.reddit._replies import Replier
from bot.reddit._retry import Throttle, backoff, judge
from bot.reddit._text import message_reply, result_reply
from bot.settings import RedditConfig
from bot.store import FINISHED, JobRecord, JobStatus
from bot.web import page_url
from generators.errors import UserError
from generators.intake import Fetcher
from generators.requests import TERMINAL, GenerationRequest, Progress, Source
from generators.tasks import TaskSupervisor

log = logging.getLogger(__name__)

PLATFORM = "reddit"
#: The newest comments read from watched subreddits per poll (one page of a listing).
WATCH_PAGE = 100
_Found = tuple[Item, str, Comment]
#: The answer to an item whose job could not be built for a reason that is ours, not the author's.
#: Stands for a post's picture before it is downloaded, so a command's flags are checked first.
UNREAD = Source("0" * 64)
#: The answer to a request whose result the image classifier flagged, in a subreddit not marked NSFW.
FLAGGED = (
    "the picture came out age-restricted, so I won't link it in a subreddit that isn't marked NSFW; "
    "try a different prompt"
)
SORRY = "sorry, something went wrong on my side with that request; please try again later"


def owner_of(author: str) -> str:
    """The job owner id of a Redditor (names are case-insensitive on Reddit)."""
    return f"{PLATFORM}:{author.lower()}"


class RedditBot:
    """Answers u/<bot> mentions (and triggers in watched subreddits) with a link to the result.

    ``fetcher`` downloads the pictures mentions under image posts remix (Reddit's media hosts only).
    """

    def __init__(
        self,
        reddit: asyncpraw.Reddit,
        service: JobService,
        config: RedditConfig,
        *,
        username: str,
        public_url: str,
        fetcher: Fetcher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reddit = reddit
        self.fetcher = fetcher
        self.service = service
        self.config = config
        self.username = username
        self.public_url = public_url
        self.ledger = Ledger(service.store)
        self.limits = Limits(config)
        self.throttle = Throttle()
        self.tasks = TaskSupervisor("reddit")
        self.replier = Replier(
            reddit, self.ledger, self.throttle, config, username=username, tasks=self.tasks
        )
        self.poster = ImagePoster(reddit, self.ledger, self.throttle, config, tasks=self.tasks)
        self._clock = clock
        self._poll_lock = asyncio.Lock()

    # -- life -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Hear this platform's job events (before ``service.recover()``) and finish a previous run's work."""
        self.service.subscribe(PLATFORM, self.on_event)
        self.tasks.spawn("recovery", self._recover())

    async def run(self) -> None:
        """Poll every ``poll_interval_s`` until cancelled; a Reddit outage slows the loop, never ends it.

        Credentials Reddit refuses are a problem in the health (``/healthz`` answers 503 with the
        variables to check), told once, and tried again less and less often until they work.
        """
        failures = 0
        while True:
            delay = self.config.poll_interval_s
            try:
                await self.poll_once()
                failures = 0
                self.service.health.report(PLATFORM, None)
            except Exception as error:
                failures += 1
                delay = max(delay, self._after_failure("reading Reddit", error, failures))
            await asyncio.sleep(delay)

    async def settle(self) -> None:
        """Wait until no delivery or recovery is running (tests; a clean shutdown)."""
        await self.tasks.settle()

    async def close(self, grace_s: float = 10.0) -> None:
        """Stop: writes in flight get ``grace_s`` to land and be recorded, the rest resume later."""
        await self.tasks.close(grace_s)

    # -- intake -----------------------------------------------------------------------------------

    async def poll_once(self) -> int:
        """Read the inbox (and watched subreddits) once and take up each new command; how many were new.

        Items are taken one by one: one whose post cannot be read right now stays unread for the next
        poll, and never keeps the bot from the items after it.
        """
        async with self._poll_lock:
            await self.throttle.wait()
            found = await self._unread() + await self._watched()
            taken = 0
            handled: list[Comment | Message] = []
            for item, command, comment in sorted(found, key=lambda one: one[0].created_utc):  # oldest first
                try:
                    taken += await self._take(item, command)
                except Exception as error:
                    self._after_failure(f"taking up {item.fullname}", error, 1)
                    continue
                if item.from_inbox:
                    handled.append(comment)
            await self._mark_read(handled)
            return taken

    async def _unread(self) -> list[_Found]:
        found: list[_Found] = []
        async for thing in self.reddit.inbox.unread(limit=None):
            # Private messages and replies that ask nothing stay unread, for the account's owner to see.
            if isinstance(thing, Comment):
                item = Item.of(thing, from_inbox=True)
                command = command_of(item, self.username, self.config.trigger)
                if command is not None:
                    found.append((item, command, thing))
        return found

    async def _watched(self) -> list[_Found]:
        if not self.config.watch_subreddits:
            return []
        subreddit = await self.reddit.subreddit("+".join(sorted(names(self.config.watch_subreddits))))
        found: list[_Found] = []
        async for comment in subreddit.comments(limit=WATCH_PAGE):
            item = Item.of(comment, from_inbox=False)
            command = command_of(item, self.username, self.config.trigger)
            if command is not None:
                found.append((item, command, comment))
        return found

    async def _take(self, item: Item, command: str) -> int:
        """Record and act on one item, unless it was taken up before; 1 if it was new."""
        async with self.ledger.holding(item.fullname):
            if await self.ledger.get(item.fullname) is not None:
                return 0
            entry = Entry(
                State.ACCEPTED, item.author or "[deleted]", item.subreddit, command, item.created_utc
            )
            reason = screen(item, self.config, self.username, self._clock())
            picture = None
            if reason is None:
                picture, reason = await self._picture(item)
            if reason is not None:
                log.info("skipping %s: %s", item.fullname, reason)
                return int(await self.ledger.claim(item.fullname, entry.to(State.IGNORED, reason=reason)))
            if picture is not None:
                entry = replace(entry, picture=picture.url)
            if not await self.ledger.claim(item.fullname, entry):
                return 0
            await self._act(item.fullname, entry, picture, limited=True)
            return 1

    async def _act(self, fullname: str, entry: Entry, picture: Picture | None, *, limited: bool) -> None:
        """Check the author's limits and the queue's room, then build and submit the item's job.

        The cheap checks come before the download: an attempt starts the author's cooldown at once, so
        ten mentions under one picture cost one download. Every way out of here queues the job or ends
        the entry (a refusal owed, or an item ignored): an item never stays ACCEPTED in a running bot.
        """
        try:
            if limited:  # a recovered item was counted by the run that took it up
                self.limits.check(entry.author, entry.subreddit)
                # A mistyped flag is answered without starting the cooldown: the fix can come at once.
                self.service.parse(entry.command, source=None if picture is None else UNREAD)
                self.limits.attempt(entry.author)
            self.service.check_room(owner_of(entry.author))
            request = await self._request(entry.command, picture)
        except UserError as error:
            await self._refuse(fullname, entry, str(error))
            return
        except Exception:
            log.exception("taking up %s failed", fullname)
            await self._refuse(fullname, entry, SORRY)
            return
        await self._submit(fullname, entry, request)

    async def _picture(self, item: Item) -> tuple[Picture | None, str | None]:
        """The picture of the item's post (None for a text post or a link), or why the item is skipped.

        One light call (``/api/info`` sends the post, not its thread). A failure that may pass rises:
        nothing is recorded yet, so the next poll reads the item again.
        """
        if not item.post:
            return None, None
        try:
            posts = [post async for post in self.reddit.info(fullnames=[item.post])]
        except Exception as error:
            verdict = judge(error, 1, self.config)
            if verdict is not None and verdict.wait_s is not None:
                raise
            why = f"{type(error).__name__}: {error}" if verdict is None else verdict.reason
            return None, f"its post cannot be read: {why}"
        return (picture_of(vars(posts[0])) if posts else None), None

    async def _request(self, command: str, picture: Picture | None) -> GenerationRequest:
        """The command's request; under a picture, a remix of it (downloaded and checked first)."""
        if picture is None:
            return self.service.parse(command)
        source = await self.service.sources.take(await download(picture, self.fetcher))
        return self.service.parse(command, source=source)

    async def _submit(self, fullname: str, entry: Entry, request: GenerationRequest) -> None:
        try:
            record = await self.service.submit(
                request, owner=owner_of(entry.author), platform=PLATFORM, reply_to=reddit_comment(fullname)
            )
        except UserError as error:  # the queue is full
            await self._refuse(fullname, entry, str(error))
            return
        self.limits.accepted(entry.subreddit)
        await self.ledger.put(fullname, entry.to(State.QUEUED, job_id=record.id))

    async def _refuse(self, fullname: str, entry: Entry, message: str) -> None:
        if self.config.reply_to_refusals and self.limits.may_refuse(entry.author):
            log.info("refusing %s: %s", fullname, message)
            await self.ledger.put(fullname, entry.to(State.REFUSED, text=message))
            self.tasks.spawn(f"item:{fullname}", self._deliver_refusal(fullname))
        else:
            log.info("refusing %s without a word: %s", fullname, message)
            await self.ledger.put(fullname, entry.to(State.IGNORED, reason=f"refused: {message}"))

    async def _mark_read(self, comments: list[Comment | Message]) -> None:
        """Clear handled mentions from the unread inbox; if this fails, the ledger still knows them."""
        if not comments:
            return
        try:
            await self.reddit.inbox.mark_read(comments)
        except Exception as error:
            self._after_failure("marking mentions read", error, 1)

    # -- delivery ---------------------------------------------------------------------------------

    def on_event(self, job_id: str, event: Progress) -> None:
        """The job service's handler for Reddit jobs: a job that ended is answered."""
        if isinstance(event, TERMINAL):
            self.tasks.spawn(f"job:{job_id}", self._deliver_job(job_id))

    async def _deliver_job(self, job_id: str) -> None:
        record = await self.service.store.get(job_id)
        if record is None or record.status not in FINISHED:
            return
        fullname = comment_of(record.reply_to)
        if fullname is None:
            log.warning(
                "job %s has no Reddit comment to answer (reply_to %s)",
                job_id,
                record.reply_to,
                extra={"job_id": job_id},
            )
            await self.service.mark_undeliverable(job_id, "no comment to answer")
            return
        async with self.ledger.holding(fullname):
            entry = await self.ledger.get(fullname)
            if entry is None:  # cannot happen: items are recorded before their job is submitted
                log.warning(
                    "job %s answers %s, which the ledger does not know",
                    job_id,
                    fullname,
                    extra={"job_id": job_id},
                )
                entry = Entry(State.QUEUED, record.owner, "", "", record.created_at, job_id=job_id)
            if entry.state not in (State.REPLIED, State.UNDELIVERABLE):
                entry, text = await self._answer(fullname, entry, record)
                entry = await self.replier.send(fullname, entry, text)
            await self._mark_job(record, entry)

    async def _answer(self, fullname: str, entry: Entry, record: JobRecord) -> tuple[Entry, str]:
        """The reply for a finished job (after its image post, if one is wanted)."""
        request = record.job.request
        result = record.result
        if record.status is not JobStatus.DONE or result is None:
            why = (
                "that request was cancelled before it finished"
                if record.status is JobStatus.CANCELLED
                else f"sorry, that did not work: {record.error or 'the job failed'}"
            )
            return entry, message_reply(why, username=self.username)
        if result.flagged and not await self._nsfw(entry.subreddit):
            log.info("not linking flagged job %s in r/%s", record.id, entry.subreddit)
            return entry, message_reply(FLAGGED, username=self.username)
        wanted = self.poster.wanted(result)
        if wanted and result.flagged:
            wanted = await self._nsfw(str(self.config.image_post_subreddit))
        if wanted:
            entry = await self.poster.post(fullname, entry, result, request.prompt)
        return entry, result_reply(
            request,
            page_url=page_url(self.public_url, record.id),
            command=self.service.command_line(request),
            username=self.username,
            post_url=entry.post_id,
        )

    async def _nsfw(self, subreddit: str) -> bool:
        """Whether r/``subreddit`` is marked NSFW; False when Reddit cannot say (the safe answer)."""
        try:
            about = await self.reddit.subreddit(subreddit, fetch=True)
        except Exception as error:
            if judge(error, 1, self.config) is None:
                raise
            log.warning("cannot tell whether r/%s is NSFW (%s): taking it as not", subreddit, error)
            return False
        return bool(getattr(about, "over18", False))

    async def _mark_job(self, record: JobRecord, entry: Entry) -> None:
        # Already marked (a restart, a second event) is fine: the marks return False then.
        if entry.state is State.REPLIED and entry.reply_id is not None:
            await self.service.mark_delivered(record.id, entry.reply_id)
        elif entry.state is State.UNDELIVERABLE:
            await self.service.mark_undeliverable(record.id, entry.reason or "Reddit refused the reply")

    async def _deliver_refusal(self, fullname: str) -> None:
        async with self.ledger.holding(fullname):
            entry = await self.ledger.get(fullname)
            if entry is not None and entry.state is State.REFUSED:
                await self.replier.send(
                    fullname, entry, message_reply(entry.text or "", username=self.username)
                )

    # -- recovery ---------------------------------------------------------------------------------

    async def _recover(self) -> None:
        """Finish what a previous run left: finished jobs, owed refusals, items without their job."""
        for record in await self.service.store.undelivered():
            if record.platform == PLATFORM:
                self.tasks.spawn(f"job:{record.id}", self._deliver_job(record.id))
        for fullname, entry in (await self.ledger.unfinished()).items():
            if entry.state is State.REFUSED:
                self.tasks.spawn(f"item:{fullname}", self._deliver_refusal(fullname))
            elif entry.state is State.ACCEPTED:
                self.tasks.spawn(f"item:{fullname}", self._resubmit(fullname))

    async def _resubmit(self, fullname: str) -> None:
        """An item recorded but whose job was not (or was, just before the stop): submit it once."""
        async with self.ledger.holding(fullname):
            entry = await self.ledger.get(fullname)
            if entry is None or entry.state is not State.ACCEPTED:
                return
            job = await self._job_for(fullname, entry.author)
            if job is not None:
                await self.ledger.put(fullname, entry.to(State.QUEUED, job_id=job.id))
                if job.status in FINISHED:
                    self.tasks.spawn(f"job:{job.id}", self._deliver_job(job.id))
                return
            picture = None if entry.picture is None else Picture(entry.picture)
            await self._act(fullname, entry, picture, limited=False)

    async def _job_for(self, fullname: str, author: str) -> JobRecord | None:
        for record in await self.service.store.jobs_of(owner_of(author)):
            if record.platform == PLATFORM and comment_of(record.reply_to) == fullname:
                return record
        return None

    # -- plumbing ---------------------------------------------------------------------------------

    def _after_failure(self, doing: str, error: Exception, failures: int) -> float:
        """Log a failed call and return how long to wait; 429s and RATELIMITs hold the whole account."""
        verdict = judge(error, failures, self.config)
        wait = backoff(failures, self.config)
        if verdict is None:
            log.error("%s failed", doing, exc_info=error)
            return wait
        if verdict.login:
            self.service.health.report(PLATFORM, verdict.reason)  # logged once, when it starts
            return wait
        if verdict.wait_s is not None:
            wait = verdict.wait_s
            if verdict.account:
                self.throttle.hold(wait)
        log.warning("%s failed (%s); trying again in %.1f s", doing, verdict.reason, wait)
        return wait
