"""Keep the libraries' own chatter out of the bot's output; imported before them.

Their per-file progress bars would interleave with memebot's progress and logs, and transformers warns,
at import time, about optional image processors (torchvision) that no pipeline here uses. Two
diffusers warnings that a user can do nothing about are dropped by name, and only those: the
deprecation notice of the ModelScope pipeline (the one that runs ModelScope clips, printed twice per
clip) and the note on casting a model that has no float32 modules to keep (an empty list); and every
deprecation warning raised from inside diffusers itself.
"""

import logging
import re
import warnings

import diffusers.utils.logging
import transformers.utils.logging

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
diffusers.utils.logging.disable_progress_bar()

#: (logger, a pattern matching the start of a message it logs that no user can act on).
UNACTIONABLE = (
    ("diffusers.pipelines.pipeline_utils", r"The TextToVideoSDPipeline has been deprecated"),
    # Only with an empty list: when a model does have float32 modules, the warning stays.
    ("diffusers.models.modeling_utils", r"There are modules in \w+ that should be kept in float32: \[\]"),
)


class DropMessages(logging.Filter):
    """Drops records whose message starts with a match of ``pattern``."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record to drop."""
        return self.pattern.match(record.getMessage()) is None


for _name, _pattern in UNACTIONABLE:
    logging.getLogger(_name).addFilter(DropMessages(_pattern))
warnings.filterwarnings(
    "ignore", message="The TextToVideoSDPipeline has been deprecated", category=FutureWarning
)
# diffusers' deprecate() notices (legacy callbacks, renamed arguments) are for library users, not for
# a bot's members or its operators: memebot drives each pipeline the way its traits say.
for _category in (FutureWarning, DeprecationWarning):
    warnings.filterwarnings("ignore", category=_category, module=r"diffusers(\.|$)")
