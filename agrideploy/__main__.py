import sys

from agrideploy.cli import main

sys.exit(main())
