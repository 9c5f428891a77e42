"""Keep the libraries' own chatter out of the bot's output; imported before them.

Their per-file progress bars would interleave with memebot's progress and logs, and transformers warns,
at import time, about optional image processors (torchvision) that no pipeline here uses.
"""

import diffusers.utils.logging
import transformers.utils.logging

transformers.utils.logging.set_verbosity_error()
transformers.utils.logging.disable_progress_bar()
diffusers.utils.logging.disable_progress_bar()
