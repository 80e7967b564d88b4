"""What the lab enters about a donation, as the donors service takes it: registration (with
a new donor), receipt, and a donor test result. Plain records with no rules, so that the
schemas which load them reach no service; the service re-exports them under its own name."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cellchain.donors.models import ContainerCondition, InfectiousResult, ScreeningOutcome

#: Where an accepted donation's containers are, unless the receiver says otherwise.
DEFAULT_RECEIPT_LOCATION = "Lab receipt"


@dataclass(frozen=True)
class NewDonor:
    """A birth mother registered with her first donation: consent and screening."""

    consent_date: dt.date
    consent_form_version: str
    screening_outcome: ScreeningOutcome
    screening_date: dt.date
    screening_notes: str | None = None


@dataclass(frozen=True)
class DonationRegistration:
    """What is known of a donation when it is registered."""

    umbilical_cord: bool
    placenta: bool
    delivery_at: dt.datetime
    collected_at: dt.datetime
    collection_site: str
    collector: str
    transport_conditions: str
    product_code: str = "UC-MSC"
    #: a new donor, or …
    new_donor: NewDonor | None = None
    #: … the code of a donor already on file (a second birth)
    donor_code: str | None = None
    #: a DIN reserved earlier for pre-printed label stock; by default a new one is allocated
    reserved_din: str | None = None


@dataclass(frozen=True)
class Receipt:
    """What the lab records when a donation arrives (1271.265(a))."""

    received_at: dt.datetime
    temperature_c: float
    condition: ContainerCondition
    accept: bool
    note: str | None = None
    location: str = DEFAULT_RECEIPT_LOCATION


@dataclass(frozen=True)
class ResultEntry:
    """A result as reported by the testing laboratory."""

    test_code: str
    specimen_date: dt.date
    result: InfectiousResult
    method: str | None = None
