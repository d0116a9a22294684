import sys

from kameng.cli import main

sys.exit(main())
