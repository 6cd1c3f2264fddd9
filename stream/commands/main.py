"""The ``hotpath`` command. Each sub-command lives in its own module, imported only when used.

A command module exposes ``add_arguments(parser)`` and ``run(args, settings) -> int``; a module holding
several commands names each as ``module:object``, an object with the same two. Settings are read once
here, so a bad ``HOTPATH_*`` value stops every command with one line, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable

from stream.settings import ConfigError, load_settings, unknown_variables
from stream.version import DISTRIBUTION, version

# The name hotpath is installed under; "hotpath" on PyPI is an unrelated project.
DESCRIPTION = (
    "hotpath escalates the cloud misconfigurations that live traffic exercises: it joins CSPM findings "
    "with OpenTelemetry traces and runtime alerts on Kafka and sends a scored, explained escalation for "
    "each finding that traffic touches. Settings are HOTPATH_* environment variables (see the README)."
)

# (command words, module or module:object, one-line help)
COMMANDS: list[tuple[tuple[str, ...], str, str]] = [
    (("topics", "apply"), "stream.commands.topics", "create or update the topics declared in topics/"),
    (("inspect",), "stream.commands.inspect", "decode input files and print one normalized record per line"),
    (("replay",), "stream.commands.replay", "run the correlation offline over exported files"),
    (("policy",), "stream.commands.policy", "check, publish and explain policy files (Prowler mutelists, hotpath's)"),
    (("worker",), "stream.commands.worker", "run the streaming job (Faust worker)"),
    (("deliver",), "stream.commands.deliver", "deliver escalations to the SIEM topic and webhooks"),
    (("demo",), "stream.commands.demo", "play the fintech scenario through Kafka and show the result"),
    (("aws", "pull-findings"), "stream.commands.aws:pull_findings", "publish Security Hub and AWS Config findings"),
    (("aws", "sync-assets"), "stream.commands.aws:sync_assets", "build asset context from the AWS account"),
]
COMMAND_GROUPS = {
    "topics": "manage the Kafka topics hotpath reads and writes",
    "aws": "read findings and assets from an AWS account",
}
# The extra (pyproject.toml) that installs each optional top-level module, so that a command needing one
# that is missing says what to install instead of showing a traceback.
EXTRA_OF_MODULE = {
    "opentelemetry": "demo",
    "boto3": "aws",
    "botocore": "aws",
    "aws_msk_iam_sasl_signer": "aws",
}


class VersionAction(argparse.Action):
    """``--version``: the version and the OTLP decoder in use, worked out only when asked (the decoder's module
    is heavy to import for every command)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS, **kwargs) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog} {version()} (OTLP decoder: {otlp_decoder_description()})")
        parser.exit()


def otlp_decoder_description() -> str:
    """Which walk decodes otlp_proto traces, and how to get the compiled one where it is missing."""
    from stream.ingest.formats.otlp import DECODER_VARIABLE, decoder_name
    from stream.ingest.formats.otlp.protobuf import COMPILED_WALK

    try:
        name = decoder_name()
    except ConfigError as exc:
        return f"none ({exc})"
    if name == "compiled":
        return "compiled C extension"
    if COMPILED_WALK is not None:
        return f"pure Python ({DECODER_VARIABLE}=python)"
    return "pure Python (no compiled extension: run make setup with a C compiler)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotpath", description=DESCRIPTION)
    parser.add_argument("--version", action=VersionAction, help="print the version and the OTLP decoder, and exit")
    groups: dict[str, argparse._SubParsersAction] = {}
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for words, module, help_text in COMMANDS:
        if len(words) == 1:
            sub = top.add_parser(words[0], help=help_text, description=help_text)
        else:
            if words[0] not in groups:
                group_help = COMMAND_GROUPS[words[0]]
                group_parser = top.add_parser(words[0], help=group_help, description=group_help)
                groups[words[0]] = group_parser.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
            sub = groups[words[0]].add_parser(words[1], help=help_text, description=help_text)
        sub.set_defaults(_module=module, _command=" ".join(words))
        _add_arguments(sub, module)
    return parser


def _add_arguments(parser: argparse.ArgumentParser, module: str) -> None:
    # Argument definitions are needed for --help, so modules are imported here; each keeps its
    # heavy and optional imports (faust, boto3, the OpenTelemetry SDK) inside run().
    add = getattr(_command(module), "add_arguments", None)
    if add is not None:
        add(parser)


def _command(name: str):
    """The command ``name`` designates: a module, or ``module:object``."""
    module, _, attribute = name.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        _warn_about_unknown_variables()
        print(f"hotpath: configuration error: {exc}", file=sys.stderr)
        return 2
    _warn_about_unknown_variables(sink.secret_env for sink in settings.sinks if sink.secret_env)
    command = _command(args._module)
    try:
        return int(command.run(args, settings) or 0)
    except ConfigError as exc:
        print(f"hotpath: configuration error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is None:  # not an optional dependency: a bug in hotpath or a broken install, shown in full
            raise
        print(f"hotpath {args._command} needs the {extra} extra ({exc.name} is not installed): "
              f"pip install '{DISTRIBUTION}[{extra}]'", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra that installs the module an import did not find; None when no extra does."""
    return EXTRA_OF_MODULE.get((exc.name or "").partition(".")[0])


def _warn_about_unknown_variables(also_known: Iterable[str] = ()) -> None:
    for warning in unknown_variables(os.environ, also_known):
        print(f"hotpath: warning: {warning}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
