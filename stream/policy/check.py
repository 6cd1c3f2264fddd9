"""``hotpath policy check``: every problem of every file as ``FILE:LINE: message``, one per line.

Messages quote the file (keys, patterns), and the file may hold what should never be printed (a
routing key pasted by mistake), so each line is masked like any text hotpath writes for people.
A key given twice and a mute rule that has already expired are warnings: the file is valid, but a rule
in it does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path

from stream.policy.document import PolicyFile, PolicyFileError, Problem, compile_policy, read_policy_file
from stream.policy.mutelist import MutelistDocument
from stream.policy.rules import Policy
from stream.redact import mask
from stream.settings import ConfigError


def problem_line(problem: Problem) -> str:
    where = f"{problem.path}:{problem.line}" if problem.line else problem.path
    return mask(f"{where}: {'warning: ' if problem.warning else ''}{problem.message}")


def check_files(paths: Sequence[Path], today: date) -> tuple[list[str], bool]:
    """The lines to print (problems, then a summary per valid file) and whether every file is valid."""
    lines: list[str] = []
    valid = True
    for path in paths:
        try:
            policy_file = read_policy_file(path, today)
        except PolicyFileError as exc:
            lines.extend(problem_line(problem) for problem in exc.problems)
            valid = False
            continue
        lines.extend(problem_line(warning) for warning in policy_file.warnings)
        lines.append(mask(f"{path}: ok: {summary(policy_file)}"))
    return lines, valid


def summary(policy_file: PolicyFile) -> str:
    """What a valid file holds, in a few words, with the start of its content hash."""
    document = policy_file.document
    digest = policy_file.source.sha256[:12]
    if isinstance(document, MutelistDocument):
        accounts = document.mutelist.accounts
        entries = sum(len(account.checks) for account in accounts.values())
        return f"Prowler mutelist, {_count(len(accounts), 'account')}, {_count(entries, 'entry', 'entries')} " \
               f"(sha256 {digest})"
    return (f"hotpath policy version {document.version}, {_count(len(document.mute), 'mute rule')}, "
            f"{_count(len(document.overrides), 'override')}, {_count(len(document.routes), 'route')} "
            f"(sha256 {digest})")


def _count(number: int, one: str, many: str | None = None) -> str:
    return f"{number} {one if number == 1 else many or one + 's'}"


def policy_or_config_error(paths: Sequence[Path]) -> Policy | None:
    """The policy of these files for the worker or replay, None without files.

    A bad file stops start-up: ConfigError holding every problem of every file, one line each, as
    ``hotpath policy check`` prints them.
    """
    if not paths:
        return None
    files, problems = [], []
    for path in paths:
        try:
            files.append(read_policy_file(path))
        except PolicyFileError as exc:
            problems.extend(problem_line(problem) for problem in exc.problems)
    if problems:
        raise ConfigError("\n".join(problems))
    return compile_policy(files)
