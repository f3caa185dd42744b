"""Errors caused by user input: the CLI prints their message and exits without a traceback."""


class KernelwrightError(Exception):
    """A mistake the user can fix; the message names the file, what is wrong and the fix."""


class ProblemError(KernelwrightError):
    """A problem file that is not in KernelBench format or cannot run."""


class CandidateFileError(KernelwrightError):
    """A candidate file that cannot be read."""
