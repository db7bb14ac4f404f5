"""``facelens``: detect, enrol, identify and verify faces from the command line.

Exit codes (scripts rely on them; ``docs/cli.md`` lists them too):

    0  success
    1  internal error (a bug: please report it)
    2  usage error (bad option or argument)
    3  an input could not be read (the others were still processed)
    4  a model is missing, altered or unknown
    5  gallery error (no such identity, name taken, not a gallery file)
    6  refused by policy (no valid consent)
    7  no usable face (enrolment refused by the quality gate, or nothing to verify)
  130  interrupted
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

import click

from facelens.cli import output
from facelens.cli.common import (
    EXIT_GALLERY,
    EXIT_INPUT,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_MISSING,
    EXIT_MODEL,
    EXIT_NO_FACE,
    EXIT_OK,
    EXIT_POLICY,
    EXIT_USAGE,
    PartialFailure,
    exit_code,
)
from facelens.errors import FacelensError

__all__ = [
    "EXIT_GALLERY",
    "EXIT_INPUT",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_MISSING",
    "EXIT_MODEL",
    "EXIT_NO_FACE",
    "EXIT_OK",
    "EXIT_POLICY",
    "EXIT_USAGE",
    "cli",
    "main",
]

# -- the command group ----------------------------------------------------------------------


class LazyGroup(click.Group):
    """A command group whose larger commands live in their own modules, imported only when
    one of them runs (or help lists them): ``facelens identify`` need not import the
    service, video or thermal code."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy or {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name].split(":")
            cmd: click.Command = getattr(importlib.import_module(module), attr)
            return cmd
        return super().get_command(ctx, name)


# command name -> "module:attribute", imported on use
LAZY_COMMANDS = {
    "detect": "facelens.cli.faces_cmd:detect",
    "enroll": "facelens.cli.faces_cmd:enroll",
    "identify": "facelens.cli.faces_cmd:identify",
    "verify": "facelens.cli.faces_cmd:verify",
    "gallery": "facelens.cli.gallery_cmd:gallery_group",
    "info": "facelens.cli.info_cmd:info",
    "eval": "facelens.cli.eval_cmd:eval_group",
    "models": "facelens.cli.models_cmd:models_group",
    "watch": "facelens.cli.video_cmd:watch",
    "redact": "facelens.cli.video_cmd:redact",
    "serve": "facelens.cli.service_cmd:serve",
    "keys": "facelens.cli.service_cmd:keys_group",
    "audit": "facelens.cli.service_cmd:audit_group",
    "govern": "facelens.cli.govern_cmd:govern_group",
    "thermal": "facelens.cli.thermal_cmd:thermal_group",
    "index": "facelens.cli.archive_cmd:index",
    "cluster": "facelens.cli.archive_cmd:cluster_group",
}


@click.group(
    cls=LazyGroup, lazy=LAZY_COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-vv for debug).")
@click.version_option(package_name="facelens")
def cli(verbose: int) -> None:
    """facelens: privacy-first face recognition.

    Enrol people who consented, then identify or verify faces in photos. Every command takes
    --gallery PATH and --json. Exit codes: 0 ok, 2 usage, 3 unreadable input, 4 model,
    5 gallery, 6 refused by policy (consent), 7 no usable face, 8 a system tool
    (ffmpeg) or optional package is not installed.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


# -- entry point ----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns (and exits with) a documented exit code."""
    try:
        rv = cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="facelens",
            standalone_mode=False,
        )
        code = rv if isinstance(rv, int) else EXIT_OK
    except click.exceptions.Abort:
        output.warn("aborted")
        code = EXIT_INTERRUPTED
    except click.ClickException as e:
        e.show()
        code = EXIT_USAGE if isinstance(e, click.UsageError) else e.exit_code
    except PartialFailure as e:
        output.warn(str(e))
        code = EXIT_INPUT
    except FacelensError as e:
        output.warn(f"error: {e}")
        code = exit_code(e)
    except KeyboardInterrupt:
        output.warn("interrupted")
        code = EXIT_INTERRUPTED
    except Exception as e:  # a bug: say so plainly, with the traceback only when asked
        logging.getLogger("facelens.cli").debug("internal error", exc_info=True)
        output.warn(
            f"internal error: {type(e).__name__}: {e} (run with -vv for details; please report it)"
        )
        code = EXIT_INTERNAL
    if argv is None:
        sys.exit(code)
    return code
