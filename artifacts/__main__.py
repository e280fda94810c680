import sys

from artifacts.cli import main

sys.exit(main())
