"""Errors a user can cause: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations


class AgrideployError(Exception):
    """A problem with the user's input or environment, explained in one line."""

    exit_code = 2


class MissingDependency(AgrideployError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"{module} is not installed: pip install 'agrideploy[{extra}]'")
        self.module = module
        self.extra = extra
