"""``python -m livesale``: the same as the ``livesale`` command."""

import sys

from livesale.cli import main

sys.exit(main())
