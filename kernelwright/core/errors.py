"""Errors caused by user input: the CLI prints their message and exits without a traceback."""


class KernelwrightError(ValueError):
    """A mistake the user can fix; the message names the file, what is wrong and the fix.
    A ValueError, so that a LangGraph server passes its message on to the client."""


class ProblemError(KernelwrightError):
    """A problem file that is not in KernelBench format or cannot run."""


class CandidateFileError(KernelwrightError):
    """A candidate file that cannot be read."""
