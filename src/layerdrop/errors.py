"""The one exception type that means "the user asked for something impossible".

The CLI turns it into a one-line message on stderr and exit code 2; anything else is a bug
and keeps its traceback.
"""


class LayerDropError(Exception):
    """Bad input: unknown model or task, impossible layer set, malformed data file, and the like."""
