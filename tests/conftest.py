"""What every test process shares."""

import os
import secrets

# endpoints.yml refers to ${ACTION_SERVER_TOKEN}, which `make run` sets; tests
# that read it in-process (and the services they start) need it too.
os.environ.setdefault("ACTION_SERVER_TOKEN", secrets.token_urlsafe(32))
