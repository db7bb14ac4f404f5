"""Which recognizer a search of a gallery uses: existing galleries keep answering when the
default recognizer changes (issue 26).

A gallery keeps a template per model (``Gallery.models()``). ``search_config`` picks the
pipeline configuration a search reads the gallery with, and the one-line notice a user is
shown when that is not the configuration asked for; the CLI and the service both call it.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

from facelens.embed.base import config_for_tag, template_tag
from facelens.errors import NoTemplatesError
from facelens.pipeline import PipelineConfig

__all__ = ["HoldsTemplates", "search_config"]


class HoldsTemplates(Protocol):
    """What ``search_config`` reads of a gallery (``facelens.Gallery`` is one)."""

    def count(self) -> int:
        """How many people are enrolled."""
        ...

    def models(self) -> dict[str, tuple[int, int]]:
        """Per template tag: (identities with one, templates)."""
        ...


def search_config(
    config: PipelineConfig, gallery: HoldsTemplates, explicit: str | None = None
) -> tuple[PipelineConfig, str | None]:
    """The configuration to search ``gallery`` with, and a one-line notice for the user (or
    None): existing galleries keep answering when the default recognizer changes.

    - The gallery holds templates of ``config``'s recognizer: ``config`` (the notice counts
      the people without such templates, who cannot be found).
    - It does not, and the caller named the recognizer (``explicit``, as the caller wrote
      it): ``NoTemplatesError`` ("N people are enrolled, none with X templates"), never an
      empty search.
    - It does not, and the recognizer is the default: ``config`` changed to the recognizer
      the gallery holds templates of (of the most people), with a notice saying how to add
      the default's templates.
    - No one is enrolled: ``config``, no notice.

    Raises:
        NoTemplatesError: as above, or when no recognizer installed here makes any of the
            templates the gallery holds.
    """
    tag = template_tag(config.embed, config.models)
    enrolled = gallery.count()
    held = {t: n for t, (n, _) in gallery.models().items() if n > 0}
    how = (
        "add them with 'facelens gallery retemplate{}' (from the chips a gallery keeps) or "
        "enrol the people again{}"
    )
    if enrolled == 0:
        return config, None
    if tag in held:
        missing = enrolled - held[tag]
        if missing <= 0:
            return config, None
        return config, (
            f"{missing} of the {enrolled} people enrolled have no {tag} templates and cannot "
            "be found: " + how.format(f" --model {explicit}" if explicit else "", "")
        )
    if explicit is not None:
        raise NoTemplatesError(
            enrolled,
            explicit,
            tag,
            how.format(f" --model {explicit}", f" with --model {explicit}").capitalize()
            + "; without --model the search uses the templates the gallery holds.",
        )
    options = [
        (n, t, c) for t, n in held.items() if (c := config_for_tag(t, config.embed, config.models))
    ]
    if not options:
        raise NoTemplatesError(
            enrolled,
            "the default recognizer's",
            tag,
            "No recognizer installed here makes the templates it holds ("
            + ", ".join(sorted(held))
            + "): "
            + how.format("", ""),
        )
    n, held_tag, embed = max(options, key=lambda o: (o[0], o[1].startswith("fusion("), o[1]))
    return dataclasses.replace(config, embed=embed), (
        f"the gallery holds no templates of the default recognizer ({tag}): searching with "
        f"{held_tag} ({n} of {enrolled} people); to search with the default, " + how.format("", "")
    )
