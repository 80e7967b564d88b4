"""The rules of sites: the one manufacturing facility and the clinical sites, who belongs to
which, where a shipment may go, where a patient is enrolled, which records a user sees and
the time zone they read in (docs/sites.md).

Typed functions; the acting user and the time are passed in; nothing here commits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select

from cellchain.core import audit
from cellchain.core.i18n import _
from cellchain.core.models import User
from cellchain.core.records import get_or_404
from cellchain.core.roles import CLINIC_STAFF, Role, effective_roles
from cellchain.errors import Conflict, InvalidInput
from cellchain.extensions import DbSession
from cellchain.sites.models import Site, SiteKind, SiteMembership

#: a site's code: upper-case letters, digits and hyphens, 2 to 20 characters
CODE_PATTERN = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,19}$")
#: the code of the first clinical site made by ``cellchain init`` and the demo
FIRST_CLINICAL_CODE = "SITE-1"


@dataclass(frozen=True)
class SiteForm:
    """What an administrator types for a site (its code and kind only at creation)."""

    name: str
    time_zone: str
    code: str = ""
    kind: str = SiteKind.CLINICAL_SITE
    address: str | None = None
    contact: str | None = None
    active: bool = True


# --- reading ----------------------------------------------------------------------------


def list_sites(session: DbSession, *, kind: SiteKind | None = None) -> list[Site]:
    """Every site, the facility first, then the clinical sites by code."""
    query = select(Site)
    if kind is not None:
        query = query.where(Site.kind == kind)
    return list(session.scalars(query.order_by(Site.kind.desc(), Site.code)))


def get_site(session: DbSession, site_id: int) -> Site:
    return get_or_404(session, Site, site_id, "site")


def facility(session: DbSession) -> Site | None:
    """The manufacturing facility, if one is recorded."""
    return session.scalars(select(Site).where(Site.kind == SiteKind.MANUFACTURING_FACILITY)).first()


def active_clinical_sites(session: DbSession) -> list[Site]:
    return [site for site in list_sites(session, kind=SiteKind.CLINICAL_SITE) if site.active]


def sites_of(session: DbSession, user: User) -> list[Site]:
    """The sites ``user`` belongs to, the earliest recorded first."""
    return list(
        session.scalars(
            select(Site)
            .join(SiteMembership, SiteMembership.site_id == Site.id)
            .where(SiteMembership.user_id == user.id)
            .order_by(Site.id)
        )
    )


def members_of(session: DbSession, site: Site) -> list[User]:
    return list(
        session.scalars(
            select(User)
            .join(SiteMembership, SiteMembership.user_id == User.id)
            .where(SiteMembership.site_id == site.id)
            .order_by(User.username)
        )
    )


# --- who sees what ----------------------------------------------------------------------


def site_restricted(roles: Iterable[Role]) -> bool:
    """Whether an account with ``roles`` sees only its own sites' patients: a clinician or an
    investigator holding no facility-wide role (technician, QC analyst, QA, statistician,
    administrator) and not the monitor, who reads every site pseudonymised."""
    held = effective_roles(frozenset(roles))
    return bool(held) and held <= CLINIC_STAFF


def visible_site_ids(
    session: DbSession, user: User, sites: list[Site] | None = None
) -> frozenset[int] | None:
    """The clinical sites whose patients ``user`` sees, or None for every site (a lab, QA,
    statistics, administration or monitor account). A clinic user who belongs to no site
    sees no patient. ``sites``: the user's sites when already read."""
    if not site_restricted(user.roles):
        return None
    mine = sites if sites is not None else sites_of(session, user)
    return frozenset(site.id for site in mine if site.clinical)


def reading_zone(
    session: DbSession, user: User | None, default: ZoneInfo, sites: list[Site] | None = None
) -> ZoneInfo:
    """The zone ``user`` reads and types times in: for a clinic user (clinician,
    investigator), the zone of the first of their clinical sites (the earliest recorded:
    a user of several sites in different zones reads in that one); for everyone
    else, and a clinic user of no site, the installation's ``CELLCHAIN_TIMEZONE``
    (``default``), which is the manufacturing facility's."""
    if user is None or not (frozenset(user.roles) & CLINIC_STAFF):
        return default
    for site in sites if sites is not None else sites_of(session, user):
        if site.clinical:
            return ZoneInfo(site.time_zone)
    return default


# --- rules used by other features -------------------------------------------------------


def enrolment_site(session: DbSession, user: User, site_id: int | None) -> Site:
    """The clinical site a patient is enrolled at: one of the enrolling user's active
    clinical sites (``site_id``, or their only one when none is named); refused otherwise."""
    own = [site for site in sites_of(session, user) if site.clinical and site.active]
    if site_id is None:
        if len(own) == 1:
            return own[0]
        if not own:
            raise InvalidInput(
                _(
                    "%(name)s belongs to no active clinical site: an administrator adds the "
                    "account to a site before it enrols patients.",
                    name=user.full_name,
                ),
                errors={"site_id": [_("No clinical site of yours.")]},
            )
        raise InvalidInput(
            _("Choose the clinical site the patient is enrolled at."),
            errors={"site_id": [_("Choose one of your sites.")]},
        )
    for site in own:
        if site.id == site_id:
            return site
    raise InvalidInput(
        _(
            "Site %(site)s is not one of the active clinical sites %(name)s belongs to.",
            site=site_id,
            name=user.full_name,
        ),
        errors={"site_id": [_("Not one of your active clinical sites.")]},
    )


def destination_site(session: DbSession, site_id: int | None) -> Site:
    """The clinical site a shipment goes to; an unknown or inactive site, or the
    manufacturing facility, is refused. Left out (None): the only active clinical site, when
    there is exactly one."""
    if site_id is None:
        candidates = active_clinical_sites(session)
        if len(candidates) == 1:
            return candidates[0]
        raise InvalidInput(
            _("Choose the clinical site the shipment goes to."),
            errors={"site_id": [_("Missing data for required field.")]},
        )
    site = session.get(Site, site_id)
    if site is None:
        raise InvalidInput(
            _("There is no site %(site)s: a shipment goes to a known clinical site.", site=site_id),
            errors={"site_id": [_("Unknown site.")]},
        )
    if not site.clinical:
        raise InvalidInput(
            _(
                "%(site)s is the manufacturing facility: a shipment goes to a clinical site.",
                site=site.name,
            ),
            errors={"site_id": [_("Not a clinical site.")]},
        )
    if not site.active:
        raise InvalidInput(
            _("%(site)s is inactive: it receives no shipment.", site=site.name),
            errors={"site_id": [_("Inactive site.")]},
        )
    return site


# --- changes ----------------------------------------------------------------------------


def _zone_errors(zone: str) -> list[str]:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return [_("%(zone)s is not an IANA time zone (e.g. Asia/Shanghai).", zone=zone)]
    return []


def _refuse(errors: dict[str, list[str]]) -> None:
    errors = {field: messages for field, messages in errors.items() if messages}
    if errors:
        raise InvalidInput(_("The site cannot be saved."), errors=errors)


def _clean(text: str | None) -> str | None:
    return text.strip() or None if text is not None else None


def create_site(
    session: DbSession, form: SiteForm, *, actor: User | None, now: dt.datetime
) -> Site:
    """Record a new site; the code is unique for all time, there is one manufacturing
    facility at most, the time zone is an IANA zone."""
    code = form.code.strip().upper()
    errors: dict[str, list[str]] = {"time_zone": _zone_errors(form.time_zone.strip())}
    if not CODE_PATTERN.match(code):
        errors["code"] = [_("2 to 20 upper-case letters, digits or hyphens.")]
    elif session.scalar(select(func.count()).where(Site.code == code)):
        errors["code"] = [_("%(code)s is already a site's code.", code=code)]
    if form.kind not in set(SiteKind):
        errors["kind"] = [_("Unknown kind of site.")]
    if not form.name.strip():
        errors["name"] = [_("Missing data for required field.")]
    _refuse(errors)
    if form.kind == SiteKind.MANUFACTURING_FACILITY and facility(session) is not None:
        raise Conflict(_("There is already a manufacturing facility: there is only one."))
    site = Site(
        code=code,
        name=form.name.strip(),
        kind=form.kind,
        time_zone=form.time_zone.strip(),
        address=_clean(form.address),
        contact=_clean(form.contact),
        active=form.active,
        created_at=now,
    )
    session.add(site)
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="site.created",
        entity_type="site",
        entity_id=site.id,
        changes={
            "code": (None, site.code),
            "name": (None, site.name),
            "kind": (None, site.kind),
            "time_zone": (None, site.time_zone),
            "address": (None, site.address),
            "contact": (None, site.contact),
            "active": (None, site.active),
        },
    )
    return site


def update_site(
    session: DbSession, site: Site, form: SiteForm, *, actor: User, now: dt.datetime
) -> Site:
    """Change a site's name, zone, address, contact or whether it is active (its code and
    kind never change: records name it)."""
    _refuse(
        {
            "time_zone": _zone_errors(form.time_zone.strip()),
            "name": [] if form.name.strip() else [_("Missing data for required field.")],
        }
    )
    new = {
        "name": form.name.strip(),
        "time_zone": form.time_zone.strip(),
        "address": _clean(form.address),
        "contact": _clean(form.contact),
        "active": form.active,
    }
    changes = {k: (getattr(site, k), v) for k, v in new.items() if getattr(site, k) != v}
    if not changes:
        return site
    for key, (_old, value) in changes.items():
        setattr(site, key, value)
    audit.record(
        session,
        actor=actor,
        at=now,
        action="site.changed",
        entity_type="site",
        entity_id=site.id,
        changes=changes,
    )
    return site


def set_memberships(
    session: DbSession,
    user: User,
    site_ids: Iterable[int],
    *,
    actor: User,
    now: dt.datetime,
) -> list[Site]:
    """Make ``user`` a member of exactly the sites ``site_ids`` (audited with the old and new
    site codes)."""
    wanted = set(site_ids)
    sites = {site.id: site for site in list_sites(session)}
    unknown = sorted(wanted - sites.keys())
    if unknown:
        raise InvalidInput(
            _("There is no site %(site)s.", site=", ".join(str(i) for i in unknown)),
            errors={"site_ids": [_("Unknown site.")]},
        )
    rows = {
        row.site_id: row
        for row in session.scalars(select(SiteMembership).where(SiteMembership.user_id == user.id))
    }
    before = sorted(sites[i].code for i in rows)
    after = sorted(sites[i].code for i in wanted)
    if before == after:
        return [sites[i] for i in sorted(wanted)]
    for site_id, row in rows.items():
        if site_id not in wanted:
            session.delete(row)
    for site_id in wanted - rows.keys():
        session.add(SiteMembership(user_id=user.id, site_id=site_id))
    session.flush()
    audit.record(
        session,
        actor=actor,
        at=now,
        action="user.sites_changed",
        entity_type="user",
        entity_id=user.id,
        changes={"sites": (", ".join(before), ", ".join(after))},
    )
    return [sites[i] for i in sorted(wanted)]


def ensure_configured_sites(
    session: DbSession,
    *,
    name: str,
    zone: str,
    facility_code: str,
    now: dt.datetime,
    actor: User | None = None,
) -> tuple[Site, Site]:
    """The manufacturing facility and the first clinical site, made from the installation's
    configuration (``CELLCHAIN_SITE_NAME``, ``CELLCHAIN_TIMEZONE``, the facility code) when
    they are not recorded yet (``cellchain init``, the demo); the existing ones otherwise."""
    made = facility(session)
    if made is None:
        made = create_site(
            session,
            SiteForm(
                code=facility_code,
                name=name,
                kind=SiteKind.MANUFACTURING_FACILITY,
                time_zone=zone,
            ),
            actor=actor,
            now=now,
        )
    first = session.scalars(
        select(Site).where(Site.kind == SiteKind.CLINICAL_SITE).order_by(Site.id)
    ).first()
    if first is None:
        first = create_site(
            session,
            SiteForm(code=FIRST_CLINICAL_CODE, name=f"{name} clinic", time_zone=zone),
            actor=actor,
            now=now,
        )
    return made, first
