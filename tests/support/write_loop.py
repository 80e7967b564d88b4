"""A worker process that writes until it is killed (tests/core/test_crash_safety.py).

``python -m tests.support.write_loop CONFIG_JSON COUNT`` builds the app from the JSON config
and reserves COUNT DINs at a time through the service (``numbering.reserve_dins``: per DIN
the sequence is moved, the code is issued and an audit entry written), one transaction and
commit per batch, named "crash-test <pid> batch <n>", for ever.
"""

from __future__ import annotations

import json
import os
import sys

from cellchain import create_app
from cellchain.core import numbering
from cellchain.core.types import utcnow
from cellchain.extensions import db

#: the purpose of each batch's DINs: the test counts the DINs of each
PURPOSE = "crash-test {pid} batch {n}"


def main(config_json: str, count: int) -> None:
    app = create_app(json.loads(config_json))
    with app.app_context():
        n = 0
        while True:
            n += 1
            numbering.reserve_dins(
                db.session,
                facility_code=app.config["FACILITY_CODE"],
                actor=None,
                now=utcnow(),
                purpose=PURPOSE.format(pid=os.getpid(), n=n),
                count=count,
            )
            db.session.commit()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
