"""The SMTP server fixture of the notification tests."""

from tests.support.mailbox import mailbox  # noqa: F401 (a fixture)
