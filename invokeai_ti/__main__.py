"""``python -m invokeai_ti`` is the same program as the ``invokeai-ti`` command."""

from .cli import main

raise SystemExit(main())
