import sys

from capgap.cli import main

sys.exit(main())
