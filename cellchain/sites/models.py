"""Tables of the sites: the manufacturing facility and the clinical sites, and who belongs
to which (migration 0045)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from cellchain.core.i18n import lazy
from cellchain.core.models import User
from cellchain.core.types import UTCDateTime, sql_values
from cellchain.extensions import Model, Recorded


class SiteKind(enum.StrEnum):
    """What a site is: where the cells are made, or where patients are treated."""

    MANUFACTURING_FACILITY = "manufacturing_facility"
    CLINICAL_SITE = "clinical_site"

    @property
    def label(self) -> str:
        return str(SITE_KIND_LABELS[self])


SITE_KIND_LABELS = {
    SiteKind.MANUFACTURING_FACILITY: lazy("manufacturing facility"),
    SiteKind.CLINICAL_SITE: lazy("clinical site"),
}


class Site(Recorded, Model):
    """A place of the trial: exactly one manufacturing facility and any number of clinical
    sites. Never deleted (records name it); an inactive site receives no shipment and
    enrols no patient."""

    __tablename__ = "sites"
    __table_args__ = (
        CheckConstraint(f"kind IN ({sql_values(SiteKind)})", name="kind_known"),
        # one manufacturing facility at most: a partial unique index on its kind
        Index(
            "uq_sites_one_facility",
            "kind",
            unique=True,
            sqlite_where=text("kind = 'manufacturing_facility'"),
            postgresql_where=text("kind = 'manufacturing_facility'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    #: short code, upper case, unique for all time (e.g. SITE-1, BER)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(30))
    #: IANA time zone (Asia/Shanghai): its users read and type times in it
    time_zone: Mapped[str] = mapped_column(String(60))
    address: Mapped[str | None] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())

    @property
    def kind_label(self) -> str:
        return SiteKind(self.kind).label

    @property
    def clinical(self) -> bool:
        return self.kind == SiteKind.CLINICAL_SITE

    def __repr__(self) -> str:
        return f"<Site {self.code}>"


class SiteMembership(Recorded, Model):
    """One user belongs to one site (a user may belong to several); set by an administrator,
    audited."""

    __tablename__ = "site_memberships"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), primary_key=True, index=True)

    user: Mapped[User] = relationship()
    site: Mapped[Site] = relationship()
