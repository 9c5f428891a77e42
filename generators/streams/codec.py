"""Progress events as stream fields and back: small JSON, with a preview's PNG as raw bytes.

A finished job's files do not travel in the entry: the event names them, and their bytes wait in their
own keys (see :mod:`generators.streams.relay`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from generators.requests import (
    Cancelled,
    Failed,
    Finished,
    GenerationResult,
    Phase,
    Preview,
    Progress,
    Queued,
    Started,
    Step,
)

Fields = dict[str, str | bytes]

_TYPES: dict[str, type[Progress]] = {
    "queued": Queued,
    "started": Started,
    "step": Step,
    "phase": Phase,
    "preview": Preview,
    "finished": Finished,
    "failed": Failed,
    "cancelled": Cancelled,
}
_NAMES = {cls: name for name, cls in _TYPES.items()}


def encode(job_id: str, event: Progress) -> Fields:
    """The stream fields of one job's event."""
    fields: Fields = {"job": job_id, "type": _NAMES[type(event)]}
    match event:
        case Finished(result=result):
            fields["data"] = json.dumps(result.to_dict())
        case Preview(png=png, step=step):
            fields["data"] = json.dumps({"step": step})
            fields["png"] = png
        case _:
            fields["data"] = json.dumps(dataclasses.asdict(event))
    return fields


def decode(fields: Mapping[bytes, bytes]) -> tuple[str, Progress]:
    """The job id and event in fields written by :meth:`encode`; ValueError when they are not."""
    try:
        job_id = fields[b"job"].decode()
        kind = _TYPES[fields[b"type"].decode()]
        data: dict[str, Any] = json.loads(fields[b"data"])
    except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not a progress event: {sorted(fields)}") from error
    if kind is Finished:
        return job_id, Finished(GenerationResult.from_dict(data))
    if kind is Preview:
        return job_id, Preview(fields[b"png"], int(data["step"]))
    return job_id, kind(**data)
