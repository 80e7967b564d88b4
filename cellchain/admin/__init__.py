"""Administration: the pages and API of users, your account and its tokens, issued
identifiers and the audit viewer. The rules they call stay in the kernel (``core``)."""
