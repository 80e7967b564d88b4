"""What the labels page and API share: the site's label settings and the file response."""

from __future__ import annotations

from flask import Response, current_app

from cellchain import resource_path
from cellchain.http import site_zone
from cellchain.labels.content import IsbtSettings
from cellchain.labels.service import LabelSettings, PrintedFile
from cellchain.labels.templates import load_templates


def label_settings() -> LabelSettings:
    """The templates in ``labels/``, the site's zone and its ISBT 128 product codes."""
    return LabelSettings(
        # read on every print, so the version and hash logged are those of the file used
        templates=load_templates(resource_path("labels")),
        zone=site_zone(),
        isbt=IsbtSettings(dict(current_app.config.get("ISBT128_PRODUCT_CODES") or {})),
    )


def file_response(printed: PrintedFile) -> Response:
    """The printed labels as a download, with the print log rows named in a header."""
    return Response(
        printed.data,
        mimetype=printed.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{printed.filename}"',
            "X-Label-Print-Ids": ",".join(str(record.id) for record in printed.prints),
        },
    )
