import sys

from capgap.commands.cli import main

sys.exit(main())
