"""Every exception facelens raises, in one tree.

::

    FacelensError                  base of everything below; never raised itself
    ├── InputError                 the caller's input is unusable (image bytes, file, argument)
    │   └── ImageTooLargeError     over the byte or pixel limit, decompression bombs included
    ├── ModelError                 a model file is missing or altered, or a backend name is unknown
    │   └── ModelMismatchError     embeddings made by different models were compared
    ├── MissingDependencyError     a system tool or optional package this needs is not installed
    ├── EnrollmentError            no usable face to enrol (quality gate, no face, ambiguous face)
    ├── PolicyError                refused on principle rather than on input
    │   ├── ConsentError           enrolment without a valid consent record
    │   ├── StoppedError           an identification while an operator has stopped them
    │   └── IdentityMismatchError  faces added to an identity do not match its templates
    └── GalleryError               the gallery store cannot do what was asked
        ├── NotFoundError          no such identity / gallery
        ├── ConflictError          the name or id is already taken
        ├── NoTemplatesError       people are enrolled, none with the asked model's templates
        └── GalleryFormatError     an export file or database is not a facelens gallery

"No face found" is not an error: detection returns an empty ``Faces``.
Each exception keeps the context that explains it as attributes (``source``, ``reason``,
``reasons``, ...), and ``str()`` of it is a complete sentence for a user.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConflictError",
    "ConsentError",
    "EnrollmentError",
    "FacelensError",
    "GalleryError",
    "GalleryFormatError",
    "GalleryKeyError",
    "IdentityMismatchError",
    "ImageTooLargeError",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "ModelMismatchError",
    "NoTemplatesError",
    "NotFoundError",
    "PolicyError",
    "StoppedError",
]


class FacelensError(Exception):
    """Base class of every facelens exception."""


class InputError(FacelensError, ValueError):
    """The input given to facelens cannot be used.

    Attributes:
        source: what was being read (a path, ``"<bytes>"``, an argument name).
        reason: why it was refused, in words.
    """

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class ImageTooLargeError(InputError):
    """The image is over a configured byte or pixel limit."""

    def __init__(self, source: str, reason: str, *, actual: int, limit: int) -> None:
        self.actual = actual
        self.limit = limit
        super().__init__(source, reason)


class ModelError(FacelensError):
    """A model cannot be used: missing file, wrong checksum, or unknown backend name.

    Attributes:
        model: the registry name of the model or backend concerned.
        hint: what to do about it (usually which package to install).
    """

    def __init__(self, model: str, message: str, hint: str = "") -> None:
        self.model = model
        self.hint = hint
        super().__init__(f"{message} {hint}".strip())


class ModelMismatchError(ModelError):
    """Embeddings from two different models were compared; their scores mean nothing."""

    def __init__(self, left: str, right: str) -> None:
        self.left = left
        self.right = right
        super().__init__(
            left,
            f"cannot compare embeddings of model {left!r} with embeddings of model {right!r}.",
            "Re-embed one side with the other's model.",
        )


class MissingDependencyError(FacelensError):
    """Something this needs is not installed: a system tool (``ffmpeg``) or an optional
    package. Nothing is wrong with the input or the models; installing it fixes it.

    Attributes:
        what: the missing tool or package, e.g. ``"ffmpeg"``.
        needed_for: what needs it, in words (``"writing video"``).
        hint: how to install it.

    Example:
        >>> str(MissingDependencyError("ffmpeg", "writing video", "apt-get install ffmpeg"))
        'ffmpeg is not installed (needed for writing video). Install it: apt-get install ffmpeg'
    """

    def __init__(self, what: str, needed_for: str, hint: str) -> None:
        self.what = what
        self.needed_for = needed_for
        self.hint = hint
        super().__init__(f"{what} is not installed (needed for {needed_for}). Install it: {hint}")


class EnrollmentError(FacelensError):
    """No usable face for enrolment.

    Attributes:
        source: the image concerned.
        reasons: named reasons such as ``"too_small"``, ``"blurred"``, ``"no_face"``.
    """

    def __init__(self, source: str, reasons: Sequence[str]) -> None:
        self.source = source
        self.reasons = tuple(reasons)
        super().__init__(f"{source}: not enrolled ({', '.join(self.reasons)})")


class PolicyError(FacelensError):
    """Refused on principle (consent, retention, a forbidden use), not because of bad input."""


class ConsentError(PolicyError):
    """Enrolment without a valid consent record is refused."""


class StoppedError(PolicyError):
    """An operator has stopped the tenant's identifications (``facelens govern stop``).

    Attributes:
        tenant: whose identifications are stopped.
        since: when they were stopped (ISO 8601).
        reason: the reason the operator gave ("" when none).
    """

    def __init__(self, tenant: str, since: str | None, reason: str = "") -> None:
        self.tenant, self.since, self.reason = tenant, since, reason
        super().__init__(
            f"identification is stopped for tenant {tenant!r} since {since}"
            + (f" ({reason})" if reason else "")
            + "; an operator resumes it with 'facelens govern resume' or POST /v1/govern/resume"
        )


class IdentityMismatchError(PolicyError):
    """Faces offered as more samples of an enrolled person do not match that person's
    templates at the model's strict calibrated threshold (one of them may be someone else),
    or could not be compared with them. Nothing is added.

    Attributes:
        name: the enrolled identity's name.
        model: the template model compared ("" when none could be).
        threshold: the similarity each new face had to reach.
        mismatched: (source, best similarity) of each face that did not reach it.
    """

    def __init__(
        self,
        message: str,
        *,
        name: str,
        model: str = "",
        threshold: float = 1.0,
        mismatched: Sequence[tuple[str, float]] = (),
    ) -> None:
        self.name, self.model, self.threshold = name, model, threshold
        self.mismatched = tuple(mismatched)
        super().__init__(message)


class GalleryError(FacelensError):
    """The gallery store cannot do what was asked."""


class GalleryKeyError(GalleryError):
    """A store's protected templates cannot be opened: no key was given for an encrypted
    store, the key is not the store's, or a sealed value was altered. Never answered with
    a guess: nothing is searched or written without the right key."""


class NoTemplatesError(GalleryError):
    """A search with a model the gallery holds no templates of, while people are enrolled:
    never answered "no one is enrolled".

    Attributes:
        enrolled: how many people the gallery holds.
        model: the model asked for (as the caller named it).
        tag: the template tag that model makes.
    """

    def __init__(self, enrolled: int, model: str, tag: str, hint: str) -> None:
        self.enrolled, self.model, self.tag = enrolled, model, tag
        people = "person is" if enrolled == 1 else "people are"
        super().__init__(
            f"{enrolled} {people} enrolled, none with {model} templates ({tag}). {hint}"
        )


class NotFoundError(GalleryError, KeyError):
    """No identity (or gallery) by that name or id."""

    def __init__(self, what: str, key: str) -> None:
        self.what = what
        self.key = key
        super().__init__(f"no {what} {key!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConflictError(GalleryError):
    """The name or id is already in use."""


class GalleryFormatError(GalleryError):
    """A file is not a facelens gallery (or export) of a version this code can read."""
