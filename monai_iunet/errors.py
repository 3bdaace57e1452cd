"""The errors monai-iunet raises on purpose, and the one place that turns them into a sentence and exit status 2.

Every error that means "something the user gave cannot be used" derives from :class:`UserInputError`, itself a
``ValueError`` (so ``except ValueError`` keeps working); the message says what was wrong and what to do. Every
``monai-iunet`` command runs through :func:`exit_status`, which prints such an error as one line
``monai-iunet <command>: error: <message>`` with exit status 2, also when MONAI wrapped it in its own
``RuntimeError``\\ s (:func:`find_user_error`). Any other exception is a bug or an environment problem and keeps its
traceback. A command that needs an optional dependency imports it under :func:`needs_extra`, so that a core install
says which extra to install instead of failing with ``No module named ...``.

Examples::

    from monai_iunet.errors import InputNotFoundError, needs_extra

    raise InputNotFoundError("dataset folder 'data/BraTS' does not exist; pass --dataset_dir with your cases.")

    @needs_extra("clinical")
    def _segment(args):
        from monai_iunet.clinical.pipeline import segment  # SimpleITK, pydicom, highdicom
        ...
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "InputNotFoundError",
    "LabelConventionError",
    "MissingExtraError",
    "OutputExistsError",
    "UserInputError",
    "exception_chain",
    "exit_status",
    "find_user_error",
    "needs_extra",
    "report_user_error",
    "user_errors_logged_without_traceback",
    "user_message",
]


class UserInputError(ValueError):
    """An input, argument or file the user gave cannot be used; the message names it and says what to do."""


class InputNotFoundError(UserInputError, FileNotFoundError):
    """A file or folder the user named (or a default one) does not exist; also a ``FileNotFoundError``."""


class OutputExistsError(UserInputError, FileExistsError):
    """An output would replace existing results the user did not ask to replace; also a ``FileExistsError``."""


class MissingExtraError(UserInputError, ImportError):
    """What was asked for needs an optional dependency that is not installed; the message names the extra."""


def exception_chain(error: BaseException, implicit: bool = True) -> Iterator[BaseException]:
    """``error``, then the exception it was raised from, and so on (each exception once).

    Args:
        error: the exception to start from.
        implicit: also follow ``__context__`` (raised while handling another) where ``__cause__`` (``raise ... from``)
            is not set.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        yield current
        seen.add(id(current))
        current = current.__cause__ if current.__cause__ is not None or not implicit else current.__context__


def _is_wrapper(error: BaseException) -> bool:
    """Whether ``error`` is one of MONAI's plain ``RuntimeError`` wrappers around the exception that caused it."""
    return type(error) is RuntimeError and (error.__cause__ is not None or error.__context__ is not None)


def find_user_error(error: BaseException) -> UserInputError | None:
    """The :class:`UserInputError` behind ``error``, or ``None`` if there is none.

    ``error`` itself, or the exception at the end of a chain of MONAI's ``RuntimeError`` wrappers ("Failed to
    instantiate component", "applying transform"; each raised from the next, or while handling it). A chain through
    any other exception type is not followed: an unexpected error raised while handling ours is a bug and keeps its
    traceback.
    """
    for current in exception_chain(error):
        if isinstance(current, UserInputError):
            return current
        if not _is_wrapper(current):
            return None
    return None


def user_message(error: UserInputError) -> str:
    """The message of ``error``, without the worker traceback that ``torch.utils.data.DataLoader`` puts in front.

    An exception raised in a ``DataLoader`` worker is re-raised in the main process as the same type with the message
    ``"Caught <type> in DataLoader worker process <n>.\\nOriginal Traceback ...\\n<module>.<type>: <message>"``.
    """
    message = str(error)
    if "\nOriginal Traceback (most recent call last):\n" not in message:
        return message
    cls = type(error)
    for name in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        if name in message:
            return message.rsplit(name, 1)[1].rstrip()
    return message


def report_user_error(error: BaseException, prog: str) -> bool:
    """Print ``<prog>: error: <message>`` to stderr if a :class:`UserInputError` is behind ``error``; whether it was."""
    user_error = find_user_error(error)
    if user_error is None:
        return False
    sys.stdout.flush()
    print(f"{prog}: error: {user_message(user_error)}", file=sys.stderr)
    return True


def exit_status(func: Callable[..., int | None], *args: Any, prog: str = "monai-iunet", **kwargs: Any) -> int:
    """Run a command's ``func(*args, **kwargs)``; its exit status, 2 (with one line on stderr) for a user error.

    This is how ``monai-iunet`` runs every subcommand (``args.func(args)``): a new subcommand only raises a
    :class:`UserInputError` (or a subclass) for bad input and gets the same one-line report. Any other exception
    propagates with its traceback.

    Args:
        func: the command; returns its exit status (``None`` counts as 0).
        args: positional arguments of ``func``.
        prog: the command's name in the error line (``"monai-iunet segment"``).
        kwargs: keyword arguments of ``func``.
    """
    try:
        return int(func(*args, **kwargs) or 0)
    except Exception as e:
        if report_user_error(e, prog):
            return 2
        raise


@contextlib.contextmanager
def needs_extra(extra: str) -> Iterator[None]:
    """Turn a missing third-party module in the block into a :class:`MissingExtraError` naming ``extra``.

    Also a decorator. Modules of monai_iunet itself are not optional: their import errors propagate unchanged.

    Args:
        extra: the ``setup.cfg`` extra that installs what the block imports (``"clinical"``, ``"ct"``, ...).

    Raises:
        MissingExtraError: ``"this needs the optional package 'pydicom': pip install "monai-iunet[clinical]"."``
    """
    try:
        yield
    except ModuleNotFoundError as e:
        if not e.name or e.name.split(".")[0] == "monai_iunet":
            raise
        raise MissingExtraError(
            f"this needs the optional package {e.name.split('.')[0]!r}, which the extra [{extra}] installs: "
            f'pip install "monai-iunet[{extra}]".'
        ) from e


@contextlib.contextmanager
def user_errors_logged_without_traceback() -> Iterator[None]:
    """Log records of a :class:`UserInputError` without its traceback, while in the block.

    Ignite's engines and MONAI's ``StatsHandler`` log an exception raised during ``engine.run()`` with
    ``logger.exception`` before re-raising it; the message stays, the traceback of our own errors goes. This swaps
    the log record factory for the duration of the block (a filter cannot do it: a bundle run configures its own
    handlers from ``logging.conf`` once it has started).
    """
    make_record = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        user_error = find_user_error(record.exc_info[1]) if record.exc_info else None
        if user_error is not None:
            record.exc_info, record.exc_text = None, None
            if isinstance(record.msg, str):
                record.msg = record.msg.replace(str(user_error), user_message(user_error))
        return record

    logging.setLogRecordFactory(factory)
    try:
        yield
    finally:
        logging.setLogRecordFactory(make_record)


class LabelConventionError(UserInputError):
    """A label map is written in another label convention than its dataset's (1/2/4 in a Decathlon datastore, ...).

    Not a broken case to skip: the labels are valid in the other convention and would train the wrong regions.
    """
