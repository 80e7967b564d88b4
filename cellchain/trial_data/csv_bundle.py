"""The dataset as a CSV bundle: a zip holding one CSV per form, ``data_dictionary.csv`` and a
``MANIFEST.txt`` naming the export, the data's hash and each file's SHA-256.

Each form's CSV has the columns ``study_id``, ``event``, ``repeat`` and then the form's items,
in the dictionary's order; values are written as in the ODM export (UTC times in ISO 8601,
``true``/``false``, empty when not recorded). The zip's entries carry the export's time, so
the same data exported at the same moment give the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import zipfile
from collections.abc import Iterable, Sequence

from cellchain.trial_data.dataset import Dataset, ProgressCallback, text_value

MEDIA_TYPE = "application/zip"
DICTIONARY = "data_dictionary.csv"
MANIFEST = "MANIFEST.txt"
DICTIONARY_COLUMNS = ("form", "item", "label", "type", "unit", "code_list")


def _csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def form_files(data: Dataset, progress: ProgressCallback | None = None) -> dict[str, bytes]:
    """File name → bytes: each form's CSV, then the data dictionary; ``progress`` is told
    after each form."""
    files: dict[str, bytes] = {}
    for done, form in enumerate(data.forms, start=1):
        header = ["study_id", "event", "repeat", *(item.name for item in form.items)]
        rows = (
            [
                record.subject,
                record.event,
                str(record.repeat),
                *(text_value(record.values.get(item.name)) or "" for item in form.items),
            ]
            for record in data.records_of(form.name)
        )
        files[f"{form.name.lower()}.csv"] = _csv(header, rows)
        if progress is not None:
            progress(done, len(data.forms))
    files[DICTIONARY] = _csv(
        DICTIONARY_COLUMNS,
        (
            [
                form.name,
                item.name,
                item.label,
                item.data_type,
                item.unit or "",
                "|".join(item.codes or ()),
            ]
            for form in data.forms
            for item in form.items
        ),
    )
    return files


def render_bundle(
    data: Dataset,
    *,
    title: str,
    created_at: dt.datetime,
    progress: ProgressCallback | None = None,
) -> bytes:
    """The zip's bytes."""
    files = form_files(data, progress)
    versions = ", ".join("v" + version for version in data.protocol_versions) or "none"
    lines = [
        title,
        f"Protocol: {data.protocol_code} ({versions})",
        f"Created: {created_at.astimezone(dt.UTC).isoformat(timespec='seconds')}",
        f"Subjects: {len(data.subjects)}; rows: {len(data.records)}",
        "Pseudonymised: subjects by study ID and chain-of-identity identifier; year of birth and",
        "age only; no name of a patient or of the site's staff. Times are UTC (ISO 8601).",
        f"Data SHA-256 (the same in the ODM export of the same data): {data.digest()}",
        "",
        "SHA-256 of each file:",
        *(f"{hashlib.sha256(body).hexdigest()}  {name}" for name, body in files.items()),
        "",
    ]
    files[MANIFEST] = "\n".join(lines).encode("utf-8")
    stamp = created_at.astimezone(dt.UTC).timetuple()[:6]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name in (MANIFEST, DICTIONARY, *(n for n in files if n not in (MANIFEST, DICTIONARY))):
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            bundle.writestr(info, files[name])
    return buffer.getvalue()
