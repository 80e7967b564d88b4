"""Electronic signatures bound to record content (21 CFR 11.50, 11.70, 11.200).

A signature re-authenticates the signer with their password at the moment of signing,
stores the printed name, UTC time and meaning, and a SHA-256 of the exact content signed.
Wherever a signed record is shown, ``manifest`` recomputes that hash from the record as it
is now; a difference marks the signature as no longer valid.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Protocol, runtime_checkable

from sqlalchemy import Select, bindparam, select, tuple_

from cellchain.core import audit
from cellchain.core.accounts import verify_password
from cellchain.core.i18n import _
from cellchain.core.models import Signature, User
from cellchain.core.roles import (
    Permission,
    Role,
    conflict_explanation,
    conflict_title,
    require,
    role_conflict,
)
from cellchain.core.types import canonical_json
from cellchain.errors import Conflict, InvalidInput, PermissionDenied
from cellchain.extensions import DbSession


@runtime_checkable
class Signable(Protocol):
    """A record that can be signed: it names itself and says which content a signature covers."""

    signature_entity_type: ClassVar[str]

    @property
    def signature_entity_id(self) -> str: ...

    def signed_content(self) -> dict[str, Any]: ...


#: The manifest a signature's content follows. 1: ``{"entity_type", "entity_id",
#: "content": record.signed_content()}``. 2 (issue 20): the same with ``"manifest": 2`` and
#: ``"content": record.signed_manifest(2)``, in which a record may name its bulk parts by a
#: digest of their rows (a recall's tens of thousands of units) instead of row by row. A
#: record class says which manifest new signatures use (``signature_manifest``, 1 when
#: absent); each stored signature is checked by the manifest it was made with, so the
#: signatures made before keep verifying as they did.
MANIFEST_1 = 1
#: ``"manifest": N`` sorts last among the envelope's keys, so canonical JSON ends with it
_MANIFEST_TAIL = re.compile(r',"manifest":(\d+)\}$')


def manifest_version(record: Signable) -> int:
    """The manifest a new signature on ``record`` follows."""
    return int(getattr(record, "signature_manifest", MANIFEST_1))


def manifest_of(stored_content: str) -> int:
    """The manifest a stored signature's content follows."""
    found = _MANIFEST_TAIL.search(stored_content)
    return int(found.group(1)) if found else MANIFEST_1


def content_hash(record: Signable, manifest: int | None = None) -> str:
    """SHA-256 of the canonical JSON of what a signature on ``record`` covers (by
    ``manifest``, by default the one a new signature follows)."""
    return hashlib.sha256(_canonical_content(record, manifest).encode()).hexdigest()


def _hash_by_manifest(record: Signable, manifest: int) -> str | None:
    """``content_hash`` of ``record`` by the manifest a stored signature names, or None when
    the record's class signs by no such manifest (a stored content altered to name another):
    that signature then matches nothing and is shown invalid, never a crash of the page."""
    if manifest not in (MANIFEST_1, manifest_version(record)):
        return None
    return content_hash(record, manifest)


def _canonical_content(record: Signable, manifest: int | None = None) -> str:
    version = manifest_version(record) if manifest is None else manifest
    if version == MANIFEST_1:
        return canonical_json(
            {
                "entity_type": record.signature_entity_type,
                "entity_id": record.signature_entity_id,
                "content": record.signed_content(),
            }
        )
    return canonical_json(
        {
            "entity_type": record.signature_entity_type,
            "entity_id": record.signature_entity_id,
            "content": record.signed_manifest(version),  # type: ignore[attr-defined]
            "manifest": version,
        }
    )


def sign(
    session: DbSession,
    *,
    record: Signable,
    meaning: str,
    user: User,
    password: str,
    now: dt.datetime,
    permission: Permission | Role,
) -> Signature:
    """Sign ``record`` as ``user`` with ``meaning``, re-entering the password now.

    ``permission`` is what the signed act needs (``roles.GRANTS``; a role by name only for
    the investigator's dose override). It is a required argument so that no signature can be
    made without saying who may make it: a signer whose effective roles do not grant it is
    refused with ``PermissionDenied`` before the password is checked, whichever route, CLI or
    script called the service. An account that holds administration together with a signing
    role signs nothing at all (no super-user). A wrong password raises
    ``CredentialsRejected``; the interface layer audits the attempt and counts it toward the
    lockout.
    """
    meaning = meaning.strip()
    if not meaning:
        raise InvalidInput(_("A signature needs a meaning."), errors={"meaning": [_("Required.")]})
    if role_conflict(user.roles):
        raise PermissionDenied(
            _(
                "%(name)s's roles are suspended: %(why)s",
                name=user.full_name,
                why=conflict_explanation(user.roles),
            ),
            title=conflict_title(user.roles),
        )
    require(user, permission)
    verify_password(session, user=user, password=password, purpose="signature", now=now)
    content = _canonical_content(record)
    signature = Signature(
        entity_type=record.signature_entity_type,
        entity_id=record.signature_entity_id,
        meaning=meaning,
        signer_id=user.id,
        printed_name=user.full_name,
        signed_at=now,
        content_hash=hashlib.sha256(content.encode()).hexdigest(),
        content=content,
    )
    session.add(signature)
    session.flush()
    audit.record(
        session,
        actor=user,
        at=now,
        action="signature.signed",
        entity_type=record.signature_entity_type,
        entity_id=record.signature_entity_id,
        changes={
            "signature_id": (None, signature.id),
            "meaning": (None, meaning),
            "printed_name": (None, user.full_name),
            "content_hash": (None, signature.content_hash),
        },
    )
    return signature


def sign_by_two(
    session: DbSession,
    *,
    record: Signable,
    first: tuple[User, str, str],
    second: tuple[User, str, str],
    now: dt.datetime,
    permission: Permission | Role,
) -> tuple[Signature, Signature]:
    """Two-person operation: two different active users sign, each with their own password.

    ``first`` and ``second`` are (user, password, meaning); both must hold ``permission``,
    checked for both before either signs.
    """
    if first[0].id == second[0].id:
        raise Conflict(
            _("The two signatures must come from two different people."),
            errors={"second_user": [_("Must be a different person from the first signer.")]},
        )
    require(first[0], permission)
    require(second[0], permission)
    one = sign(
        session,
        record=record,
        user=first[0],
        password=first[1],
        meaning=first[2],
        now=now,
        permission=permission,
    )
    two = sign(
        session,
        record=record,
        user=second[0],
        password=second[1],
        meaning=second[2],
        now=now,
        permission=permission,
    )
    return one, two


@dataclass(frozen=True)
class SignatureManifest:
    """A signature as it is shown: who, when, what it means, and whether it still holds."""

    signature_id: int
    printed_name: str
    username: str
    signed_at: dt.datetime
    meaning: str
    valid: bool


def signatures_of(session: DbSession, record: Signable) -> list[Signature]:
    return list(
        session.execute(
            select(Signature)
            .where(
                Signature.entity_type == record.signature_entity_type,
                Signature.entity_id == record.signature_entity_id,
            )
            .order_by(Signature.signed_at, Signature.id)
        ).scalars()
    )


def manifest(session: DbSession, record: Signable) -> list[SignatureManifest]:
    """The signatures on ``record``, each checked against the record's content as it is now."""
    return manifests(session, [record]).get(key_of(record), [])


def key_of(record: Signable) -> tuple[str, str]:
    """How signatures name a record: its entity type and id."""
    return record.signature_entity_type, record.signature_entity_id


@functools.cache
def _manifests_statement() -> Select[Signature, str]:
    """The signatures of the records named by ``:keys`` (``key_of`` pairs) with their
    signer's username joined in: one statement however many signatures and signers. Built
    once per process (issue 20: composing it cost about as much as running it)."""
    return (
        select(Signature, User.username)
        .join(User, User.id == Signature.signer_id)
        .where(
            tuple_(Signature.entity_type, Signature.entity_id).in_(
                bindparam("keys", expanding=True)
            )
        )
        .order_by(Signature.signed_at, Signature.id)
    )


def manifests(
    session: DbSession, records: Sequence[Signable]
) -> dict[tuple[str, str], list[SignatureManifest]]:
    """``manifest`` for many records with one query for all their signatures (a trace, a
    report), keyed by ``key_of``; each still checked against its record as it is now."""
    keys = {key_of(record): record for record in records}
    if not keys:
        return {}
    rows = session.execute(_manifests_statement(), {"keys": list(keys)})
    return manifests_of(
        records,
        (
            SignatureRead(
                sig.id,
                sig.entity_type,
                sig.entity_id,
                sig.content,
                sig.content_hash,
                sig.printed_name,
                sig.signed_at,
                sig.meaning,
                username,
            )
            for sig, username in rows
        ),
    )


class SignatureRead(NamedTuple):
    """A stored signature as a manifest judges it, read as plain columns, with its signer's
    username."""

    id: int
    entity_type: str
    entity_id: str
    content: str
    content_hash: str
    printed_name: str
    signed_at: dt.datetime
    meaning: str
    username: str


def manifests_of(
    records: Sequence[Signable], rows: Iterable[SignatureRead]
) -> dict[tuple[str, str], list[SignatureManifest]]:
    """``manifests`` of the signatures on ``records`` already read (in the order they were
    signed: ``signed_at``, then id), keyed by ``key_of``; each checked against its record as
    it is now. Only the rows given are judged (a reader that needs the signatures of one
    meaning may read only those)."""
    keys = {key_of(record): record for record in records}
    found: dict[tuple[str, str], list[SignatureManifest]] = {}
    hashes: dict[tuple[str, str, int], str | None] = {}
    for sig in rows:
        key = (sig.entity_type, sig.entity_id)
        version = manifest_of(sig.content)
        if (*key, version) not in hashes:
            hashes[(*key, version)] = _hash_by_manifest(keys[key], version)
        found.setdefault(key, []).append(
            SignatureManifest(
                signature_id=sig.id,
                printed_name=sig.printed_name,
                username=sig.username,
                signed_at=sig.signed_at,
                meaning=sig.meaning,
                valid=sig.content_hash == hashes[(*key, version)],
            )
        )
    return found
