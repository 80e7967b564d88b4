"""The batch record of a lot, assembled for the page, the API and the PDF.

Everything is read with a fixed number of queries: the lot's bags, their ancestors (one
recursive query), the steps that made any of them, their units, materials and equipment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import cast

from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from cellchain.chain import service as chain
from cellchain.chain.models import Unit
from cellchain.core import signatures
from cellchain.core.i18n import _
from cellchain.donors.models import Donation
from cellchain.extensions import DbSession
from cellchain.manufacturing.deviations import deviations as deviation_rules
from cellchain.manufacturing.models import (
    CellRecord,
    Deviation,
    ExcursionAuthorisation,
    Lot,
    ProcessingStep,
    StepEquipment,
    StepMaterial,
    StepUnit,
)
from cellchain.manufacturing.processing import processing


@dataclass
class StepNode:
    """A step of the record and the steps that went on from what it made (the tree)."""

    step: ProcessingStep
    inputs: list[Unit]
    outputs: list[Unit]
    children: list[StepNode] = field(default_factory=list)


@dataclass(frozen=True)
class Excursion:
    """A step of the record that went beyond a product limit, and what authorised it."""

    step: ProcessingStep
    deviation: Deviation
    authorisation: ExcursionAuthorisation | None
    #: the limits exceeded, in words in the reader's language ("passage P6 (maximum P5)")
    exceeded: list[str]
    #: QA's authorising signature still matches what it signed
    signature_valid: bool


@dataclass(frozen=True)
class BatchRecord:
    lot: Lot
    donation: Donation
    steps: list[ProcessingStep]
    #: the steps as a tree from the isolation to the fill (and freezing)
    roots: list[StepNode]
    bags: list[tuple[Unit, CellRecord]]
    records: dict[int, CellRecord]
    deviations: list[Deviation]
    #: steps beyond the product's passage or CPD limit, each with its QA authorisation
    excursions: list[Excursion] = field(default_factory=list)

    @property
    def open_deviations(self) -> list[Deviation]:
        return [d for d in self.deviations if d.status == "open"]


def batch_record(session: DbSession, lot: Lot) -> BatchRecord:
    """The lot's batch record: every step that made its bags, as a tree, with the bags."""
    bags = processing.bags_of(session, lot)
    lineage = [step.unit for step in chain.ancestors_of_all(session, bags)] + bags
    unit_ids = [unit.id for unit in lineage]
    steps = list(
        session.execute(
            select(ProcessingStep)
            .where(
                or_(
                    ProcessingStep.lot_id == lot.id,
                    ProcessingStep.id.in_(
                        select(StepUnit.step_id).where(
                            StepUnit.role == "output", StepUnit.unit_id.in_(unit_ids)
                        )
                    ),
                )
            )
            .options(
                selectinload(ProcessingStep.units).selectinload(StepUnit.unit),
                selectinload(ProcessingStep.materials).selectinload(StepMaterial.material_lot),
                selectinload(ProcessingStep.equipment).selectinload(StepEquipment.item),
                selectinload(ProcessingStep.performed_by),
            )
            .order_by(ProcessingStep.performed_at, ProcessingStep.id)
        ).scalars()
    )
    records = processing.cell_records(session, lineage)
    deviations = list(
        session.execute(
            select(Deviation).where(Deviation.lot_id == lot.id).order_by(Deviation.id)
        ).scalars()
    )
    donation = processing.lot_donation(session, lot)
    return BatchRecord(
        lot=lot,
        donation=donation,
        steps=steps,
        roots=_tree(steps),
        bags=[(bag, records[bag.id]) for bag in bags],
        records=records,
        deviations=deviations,
        excursions=_excursions(session, donation, steps),
    )


def _excursions(
    session: DbSession, donation: Donation, steps: list[ProcessingStep]
) -> list[Excursion]:
    """The steps that relied on a limit-excursion deviation, in two queries whatever their
    number: the deviations with their authorisations, then the authorisations' signatures."""
    relied = [step for step in steps if step.deviation_id is not None]
    if not relied:
        return []
    found = {
        d.id: d
        for d in session.execute(
            select(Deviation)
            .where(Deviation.id.in_({step.deviation_id for step in relied}))
            .options(
                selectinload(Deviation.authorisation).selectinload(
                    ExcursionAuthorisation.authorised_by
                )
            )
        ).scalars()
    }
    authorisations = [d.authorisation for d in found.values() if d.authorisation is not None]
    signed = signatures.manifests(session, authorisations)
    limits = deviation_rules.product_limits(donation)
    lines = []
    for step in relied:
        deviation = found[cast(int, step.deviation_id)]  # relied steps have a deviation
        authorisation = deviation.authorisation
        manifests = signed.get(signatures.key_of(authorisation), []) if authorisation else []
        exceeded = []
        if (step.passage or 0) > limits.max_passage:
            exceeded.append(
                _(
                    "passage P%(passage)s (maximum P%(maximum)s)",
                    passage=step.passage,
                    maximum=limits.max_passage,
                )
            )
        if (step.cumulative_pd or 0) > limits.max_cumulative_pd:
            exceeded.append(
                _(
                    "cumulative PD %(cpd)s (maximum %(maximum)s)",
                    cpd=format(step.cumulative_pd, ".1f"),
                    maximum=format(limits.max_cumulative_pd, "g"),
                )
            )
        lines.append(
            Excursion(
                step=step,
                deviation=deviation,
                authorisation=authorisation,
                exceeded=exceeded,
                signature_valid=any(
                    m.valid and m.meaning == deviation_rules.AUTHORISE_MEANING for m in manifests
                ),
            )
        )
    return lines


def _tree(steps: list[ProcessingStep]) -> list[StepNode]:
    """Hang each step under the step that made (the first of) its inputs."""
    nodes = [
        StepNode(
            step=step,
            inputs=[row.unit for row in step.units if row.role == "input"],
            outputs=[row.unit for row in step.units if row.role == "output"],
        )
        for step in steps
    ]
    made_by: dict[int, StepNode] = {}
    for node in nodes:
        for unit in node.outputs:
            made_by[unit.id] = node
    roots: list[StepNode] = []
    for node in nodes:
        parent = next((made_by[u.id] for u in node.inputs if u.id in made_by), None)
        if parent is None or parent is node:
            roots.append(node)
        else:
            parent.children.append(node)
    return roots
