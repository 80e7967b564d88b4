"""Rules of the manufacturing package's controlled document: the product definition, its
versions and their approval (the use cases are ``documents.service.DocumentKind``'s)."""

from __future__ import annotations

from cellchain.core.roles import Permission
from cellchain.documents.service import DefaultVersion, DocumentKind
from cellchain.manufacturing.culture_schedule import check_parameters
from cellchain.manufacturing.defaults import UC_MSC_CODE, UC_MSC_PARAMETERS, UC_MSC_TITLE
from cellchain.manufacturing.models import ProductDefinition

PRODUCTS = DocumentKind(
    model=ProductDefinition,
    permission=Permission.SIGN_PRODUCT,
    approval_meaning="approval: product definition in force",
    default=DefaultVersion(UC_MSC_CODE, UC_MSC_TITLE, UC_MSC_PARAMETERS),
    missing=(
        "No version of product {code} is in force; QA must approve a product definition "
        "before donations for it can be registered."
    ),
    missing_errors={"product_code": ["No approved version."]},
    check=check_parameters,
)
