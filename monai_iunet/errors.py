"""The errors monai-iunet raises on purpose: something the user gave cannot be used, and the message says what to do.

Every such error derives from :class:`UserInputError`, itself a ``ValueError`` (so ``except ValueError`` keeps
working). ``monai-iunet run`` prints these in a line or two with exit status 2 instead of MONAI's traceback
(:mod:`monai_iunet.bundle.run`); any other exception is a bug or an environment problem and keeps its traceback.

Examples::

    from monai_iunet.errors import InputNotFoundError

    raise InputNotFoundError("dataset folder 'data/BraTS' does not exist; pass --dataset_dir with your cases.")
"""

from __future__ import annotations

__all__ = ["InputNotFoundError", "LabelConventionError", "OutputExistsError", "UserInputError"]


class UserInputError(ValueError):
    """An input, argument or file the user gave cannot be used; the message names it and says what to do."""


class InputNotFoundError(UserInputError, FileNotFoundError):
    """A file or folder the user named (or a default one) does not exist; also a ``FileNotFoundError``."""


class OutputExistsError(UserInputError, FileExistsError):
    """An output would replace existing results the user did not ask to replace; also a ``FileExistsError``."""


class LabelConventionError(UserInputError):
    """A label map is written in another label convention than its dataset's (1/2/4 in a Decathlon datastore, ...).

    Not a broken case to skip: the labels are valid in the other convention and would train the wrong regions.
    """
