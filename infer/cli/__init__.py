"""Command lines over the inference library: ``python -m infer convert|batch|info``.

Each sub-command lives in its own module with ``add_parser(subparsers)`` and
``run(args, console) -> exit code``; :mod:`infer.cli.common` holds what they
share (conversion flags, finding voices and indexes, progress, errors, JSON).
The RVC-compatible scripts ``tools/infer_cli.py`` and ``tools/infer_batch_rvc.py``
use the same helpers.  Exit codes: 0 success, 1 conversion or input error,
2 usage error, 130 interrupted.
"""
