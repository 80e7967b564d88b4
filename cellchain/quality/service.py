"""Rules of the quality package's controlled document: the release specification, its
versions and their approval (the use cases are ``documents.service.DocumentKind``'s).

QC results, invalidations, dispositions and the certificate of analysis build on these.
"""

from __future__ import annotations

from cellchain.core.i18n import lazy
from cellchain.core.roles import Permission
from cellchain.documents.service import DefaultVersion, DocumentKind
from cellchain.quality.defaults import UC_MSC_SPEC_CODE, UC_MSC_SPEC_TITLE, UC_MSC_SPECIFICATION
from cellchain.quality.evaluation import check_specification
from cellchain.quality.models import Specification
from cellchain.quality.wording import formatted_later

SPECIFICATIONS = DocumentKind(
    model=Specification,
    permission=Permission.SIGN_SPECIFICATION,
    approval_meaning="approval: release specification in force",
    default=DefaultVersion(UC_MSC_SPEC_CODE, UC_MSC_SPEC_TITLE, UC_MSC_SPECIFICATION),
    missing=formatted_later(
        lazy("No release specification for {code} is in force; QA must approve one first.")
    ),
    # every line must be one the evaluation can judge
    check=check_specification,
)
