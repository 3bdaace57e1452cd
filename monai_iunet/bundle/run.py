"""``monai-iunet run``: MONAI's ``monai.bundle run``, with the errors our bundles raise on purpose shown in a line.

The command line is handed unchanged to MONAI's own :func:`monai.bundle.scripts.run` through ``fire``, exactly as
``python -m monai.bundle run`` does, so every id, override and flag works the same (``train_and_evaluate``,
``--config_file "['a.json','b.json']"``, ``--bundle_root ...``, ``--epochs 2``, ``--network_def#channels ...``).
The one difference is what a failure looks like. MONAI wraps an exception raised while it builds a config
component in ``RuntimeError: Failed to instantiate component ...`` (and ``Failed to evaluate ...`` for ``$``
expressions, ``applying transform ...`` in transforms), so the sentence that says what to do ends up in the middle
of a long traceback. Here the chain of those wrappers is followed back to its cause; if that is a
:class:`~monai_iunet.errors.UserInputError` (missing dataset folder, existing predictions, broken cases, a bad
argument), only its message is printed and the exit status is 2. Any other exception is printed with its full
traceback (exit status 1), as Python does. While the bundle runs, log records of our errors (ignite and MONAI's
``StatsHandler`` log an exception raised in ``engine.run()`` before re-raising it) keep their message and lose their
traceback. One of our errors raised in a ``DataLoader`` worker process (``num_workers > 0``) reaches the main
process as a copy whose message holds the worker's traceback; only the original message is printed.

Examples::

    monai-iunet run train_and_evaluate \\
        --config_file "['bundles/brats_iunet/configs/train.json','bundles/brats_iunet/configs/evaluate.json']" \\
        --bundle_root bundles/brats_iunet --epochs 2
    monai-iunet run --help   # MONAI's description of the arguments
"""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator, Sequence

from monai_iunet.errors import UserInputError

__all__ = ["find_user_error", "run_bundle", "user_message"]


def _is_wrapper(error: BaseException) -> bool:
    """Whether ``error`` is one of MONAI's plain ``RuntimeError`` wrappers around the exception that caused it."""
    return type(error) is RuntimeError and (error.__cause__ is not None or error.__context__ is not None)


def find_user_error(error: BaseException) -> UserInputError | None:
    """The :class:`~monai_iunet.errors.UserInputError` behind ``error``, or ``None`` if there is none.

    ``error`` itself, or the exception at the end of a chain of MONAI's ``RuntimeError`` wrappers (each raised
    ``from`` the next, or while handling it: ``__cause__``, else ``__context__``). A chain through any other
    exception type is not followed: an unexpected error raised while handling ours is a bug and keeps its traceback.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, UserInputError):
            return current
        if not _is_wrapper(current):
            return None
        seen.add(id(current))
        current = current.__cause__ if current.__cause__ is not None else current.__context__
    return None


def user_message(error: UserInputError) -> str:
    """The message of ``error``, without the worker traceback that ``torch.utils.data.DataLoader`` puts in front.

    An exception raised in a ``DataLoader`` worker is re-raised in the main process as the same type with the message
    ``"Caught <type> in DataLoader worker process <n>.\nOriginal Traceback ...\n<module>.<type>: <message>"``.
    """
    message = str(error)
    if "\nOriginal Traceback (most recent call last):\n" not in message:
        return message
    cls = type(error)
    for name in (f"{cls.__module__}.{cls.__qualname__}: ", f"{cls.__qualname__}: "):
        if name in message:
            return message.rsplit(name, 1)[1].rstrip()
    return message


@contextlib.contextmanager
def _user_errors_logged_without_traceback() -> Iterator[None]:
    """Log records of a :class:`~monai_iunet.errors.UserInputError` without its traceback, while in the block.

    Ignite's engines and MONAI's ``StatsHandler`` log an exception raised during ``engine.run()`` with
    ``logger.exception`` before re-raising it; the message stays, the traceback of our own errors goes.
    """
    make_record = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
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


def run_bundle(argv: Sequence[str], prog: str = "monai-iunet run") -> int:
    """Run ``monai.bundle.scripts.run`` with the command-line arguments ``argv``; returns the exit status.

    Args:
        argv: the arguments after ``run``, as ``python -m monai.bundle run`` takes them (run id, ``--config_file``,
            ``--meta_file``, ``--logging_file``, ``--bundle_root`` and any ``--<id> <value>`` override).
        prog: the command's name in ``fire``'s usage and help messages.

    Returns:
        0 on success, 2 when the bundle raised a :class:`~monai_iunet.errors.UserInputError` (its message printed to
        stderr), 1 for any other exception (its traceback printed to stderr). ``--help`` (or ``-h``) anywhere shows
        MONAI's description of ``run``; it and ``fire``'s argument errors exit through ``SystemExit``.
    """
    import fire
    from monai.bundle.scripts import run

    argv = list(argv)
    options = argv[: argv.index("--")] if "--" in argv else argv
    if "--help" in options or "-h" in options:  # fire reads them only after "--" (MONAI's `run --help` fails)
        argv = ["--", "--help"]
    try:
        with _user_errors_logged_without_traceback():
            fire.Fire(run, command=argv, name=prog)
    except Exception as e:
        sys.stdout.flush()
        user_error = find_user_error(e)
        if user_error is None:
            traceback.print_exc()
            return 1
        print(f"{prog}: error: {user_message(user_error)}", file=sys.stderr)
        print("(python -m monai.bundle run with the same arguments shows the full traceback)", file=sys.stderr)
        return 2
    return 0
