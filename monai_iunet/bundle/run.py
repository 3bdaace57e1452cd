"""``monai-iunet run``: MONAI's ``monai.bundle run``, with the errors our bundles raise on purpose shown in a line.

The command line is handed unchanged to MONAI's own :func:`monai.bundle.scripts.run` through ``fire``, exactly as
``python -m monai.bundle run`` does, so every id, override and flag works the same (``train_and_evaluate``,
``--config_file "['a.json','b.json']"``, ``--bundle_root ...``, ``--epochs 2``, ``--network_def#channels ...``).
The one difference is what a failure looks like. MONAI wraps an exception raised while it builds a config
component in ``RuntimeError: Failed to instantiate component ...`` (and ``Failed to evaluate ...`` for ``$``
expressions, ``applying transform ...`` in transforms), so the sentence that says what to do ends up in the middle
of a long traceback. Here the chain of those wrappers is followed back to its cause
(:func:`monai_iunet.errors.find_user_error`); if that is a :class:`~monai_iunet.errors.UserInputError` (missing
dataset folder, existing predictions, broken cases, a bad argument), only its message is printed and the exit
status is 2. Any other exception is printed with its full traceback (exit status 1), as Python does. While the
bundle runs, log records of our errors (ignite and MONAI's ``StatsHandler`` log an exception raised in
``engine.run()`` before re-raising it) keep their message and lose their traceback. One of our errors raised in a
``DataLoader`` worker process (``num_workers > 0``) reaches the main process as a copy whose message holds the
worker's traceback; only the original message is printed.

Examples::

    monai-iunet run train_and_evaluate \\
        --config_file "['bundles/brats_iunet/configs/train.json','bundles/brats_iunet/configs/evaluate.json']" \\
        --bundle_root bundles/brats_iunet --epochs 2
    monai-iunet run --help   # MONAI's description of the arguments
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

from monai_iunet.errors import report_user_error, user_errors_logged_without_traceback

__all__ = ["run_bundle"]


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
        with user_errors_logged_without_traceback():
            fire.Fire(run, command=argv, name=prog)
    except Exception as e:
        if not report_user_error(e, prog):
            traceback.print_exc()
            return 1
        print("(python -m monai.bundle run with the same arguments shows the full traceback)", file=sys.stderr)
        return 2
    return 0
