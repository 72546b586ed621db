"""Every line the CLI prints passes through here: secrets from the environment show as ***.

MLflow puts its tracking URI into error messages and Ray into tracebacks; filtering what
reaches the terminal is the one place that catches all of them.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


class RedactingStream:
    """A text stream that writes through to `stream` with every secret replaced."""

    def __init__(self, stream: TextIO, secrets: list[tuple[str, str]]) -> None:
        self._stream = stream
        self._secrets = secrets

    def write(self, text: str) -> int:
        from sweeps.credentials import redact

        self._stream.write(redact(text, self._secrets))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # isatty, flush, fileno, encoding...
        return getattr(self._stream, name)


def redact_output() -> None:
    """Filter stdout and stderr, if this process's environment holds any secret."""
    from sweeps.credentials import environment_secrets

    secrets = environment_secrets()
    if secrets:
        sys.stdout = RedactingStream(sys.stdout, secrets)
        sys.stderr = RedactingStream(sys.stderr, secrets)
