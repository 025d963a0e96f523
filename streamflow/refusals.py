"""A step refused: it must not run now (a closed gate, a missing mart, another run holding the
pipeline lock). The message says what to do; the command line exits 4 and the flow never retries
it. Low in the house, so the engines, the job lock and the steps can all raise it."""


class StepRefused(RuntimeError):
    """A step that must not run now; the message says what to do."""
