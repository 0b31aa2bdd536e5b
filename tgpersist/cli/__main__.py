import sys

from tgpersist.cli import main

sys.exit(main())
