"""The dataset as CDISC ODM 1.3.2 XML (a Snapshot): the study's metadata (events, forms, item
groups, items, code lists, units) and every subject's clinical data.

Written with the standard library's ElementTree: the app needs nothing else at run time. The
tests validate the output against the ODM 1.3.2 schema (the XSD shipped by ``odmlib``).

OIDs: ``SE.<event>``, ``F.<form>``, ``IG.<form>``, ``I.<form>.<ITEM>``, ``CL.<form>.<ITEM>``,
``MU.<unit>``. Each form has one item group; a form that repeats within a visit (a dose and
its replacement) repeats its item group, keyed ``ItemGroupRepeatKey`` 1, 2, …
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections import defaultdict

from cellchain.trial_data.dataset import (
    Dataset,
    Form,
    Item,
    ProgressCallback,
    Record,
    text_value,
)

ODM_NS = "http://www.cdisc.org/ns/odm/v1.3"
MEDIA_TYPE = "application/xml"


def oid(*parts: str) -> str:
    """An OID from parts: letters, digits, dots, dashes and underscores only."""
    return ".".join(re.sub(r"[^A-Za-z0-9_-]", "_", part) for part in parts)


def _item_oid(form: Form, item: Item) -> str:
    return oid("I", form.name, item.name.upper())


def _unit_oid(unit: str) -> str:
    return oid("MU", unit.replace("/", "_per_").replace("%", "percent"))


def _el(parent: ET.Element, tag: str, **attributes: str) -> ET.Element:
    return ET.SubElement(parent, tag, attributes)


def _translated(parent: ET.Element, tag: str, text: str) -> None:
    holder = _el(parent, tag)
    translated = _el(holder, "TranslatedText")
    translated.set("{http://www.w3.org/XML/1998/namespace}lang", "en")
    translated.text = text


def render_odm(
    data: Dataset,
    *,
    file_oid: str,
    created_at: dt.datetime,
    description: str,
    progress: ProgressCallback | None = None,
) -> bytes:
    """The ODM document's bytes (UTF-8, with an XML declaration); ``progress`` is told after
    each subject's clinical data."""
    root = ET.Element(
        "ODM",
        {
            "xmlns": ODM_NS,
            "FileOID": file_oid,
            "FileType": "Snapshot",
            "Granularity": "All",
            "CreationDateTime": created_at.astimezone(dt.UTC).isoformat(timespec="seconds"),
            "ODMVersion": "1.3.2",
            "Originator": "cellchain",
            "SourceSystem": "cellchain",
            "Description": description,
        },
    )
    study_oid = oid("ST", data.protocol_code)
    mdv_oid = oid("MDV", data.protocol_code, *data.protocol_versions or ["none"])
    study = _el(root, "Study", OID=study_oid)
    variables = _el(study, "GlobalVariables")
    _el(variables, "StudyName").text = data.protocol_code
    _el(variables, "StudyDescription").text = data.protocol_title
    _el(variables, "ProtocolName").text = data.protocol_code
    units = sorted({item.unit for form in data.forms for item in form.items if item.unit})
    if units:
        basic = _el(study, "BasicDefinitions")
        for unit in units:
            measurement = _el(basic, "MeasurementUnit", OID=_unit_oid(unit), Name=unit)
            _translated(measurement, "Symbol", unit)
    versions = ", ".join(f"v{v}" for v in data.protocol_versions) or "none"
    mdv = _el(study, "MetaDataVersion", OID=mdv_oid, Name=f"{data.protocol_code} ({versions})")
    protocol = _el(mdv, "Protocol")
    for order, event in enumerate(data.events, start=1):
        _el(
            protocol,
            "StudyEventRef",
            StudyEventOID=oid("SE", event.code),
            OrderNumber=str(order),
            Mandatory="No",
        )
    for event in data.events:
        definition = _el(
            mdv,
            "StudyEventDef",
            OID=oid("SE", event.code),
            Name=event.label,
            Repeating="No",
            Type=event.kind,
        )
        for order, form_name in enumerate(event.forms, start=1):
            _el(
                definition,
                "FormRef",
                FormOID=oid("F", form_name),
                OrderNumber=str(order),
                Mandatory="No",
            )
    for form in data.forms:
        definition = _el(mdv, "FormDef", OID=oid("F", form.name), Name=form.label, Repeating="No")
        _el(definition, "ItemGroupRef", ItemGroupOID=oid("IG", form.name), Mandatory="Yes")
    for form in data.forms:
        group = _el(
            mdv,
            "ItemGroupDef",
            OID=oid("IG", form.name),
            Name=form.label,
            Repeating="Yes" if form.repeating else "No",
        )
        for order, item in enumerate(form.items, start=1):
            _el(
                group,
                "ItemRef",
                ItemOID=_item_oid(form, item),
                OrderNumber=str(order),
                Mandatory="No",
            )
    for form in data.forms:
        for item in form.items:
            definition = _el(
                mdv, "ItemDef", OID=_item_oid(form, item), Name=item.name, DataType=item.data_type
            )
            if item.data_type == "text":
                definition.set("Length", "2000")
            _translated(definition, "Description", item.label)
            if item.unit:
                _el(definition, "MeasurementUnitRef", MeasurementUnitOID=_unit_oid(item.unit))
            if item.codes:
                _el(definition, "CodeListRef", CodeListOID=oid("CL", form.name, item.name.upper()))
    for form in data.forms:
        for item in form.items:
            if not item.codes:
                continue
            codes = _el(
                mdv,
                "CodeList",
                OID=oid("CL", form.name, item.name.upper()),
                Name=f"{form.label}: {item.label}",
                DataType="integer" if item.data_type == "integer" else "text",
            )
            for code in item.codes:
                listed = _el(codes, "CodeListItem", CodedValue=code)
                _translated(listed, "Decode", code.replace("_", " "))
    _clinical_data(root, data, study_oid, mdv_oid, progress)
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _clinical_data(
    root: ET.Element,
    data: Dataset,
    study_oid: str,
    mdv_oid: str,
    progress: ProgressCallback | None,
) -> None:
    clinical = _el(root, "ClinicalData", StudyOID=study_oid, MetaDataVersionOID=mdv_oid)
    forms = {form.name: form for form in data.forms}
    event_order = {event.code: index for index, event in enumerate(data.events)}
    form_order = {form.name: index for index, form in enumerate(data.forms)}
    by_subject: dict[str, dict[str, dict[str, list[Record]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for record in data.records:
        by_subject[record.subject][record.event][record.form].append(record)
    for done, subject in enumerate(data.subjects, start=1):
        subject_data = _el(clinical, "SubjectData", SubjectKey=subject)
        events = by_subject.get(subject, {})
        for event in sorted(events, key=lambda code: event_order.get(code, len(event_order))):
            event_data = _el(subject_data, "StudyEventData", StudyEventOID=oid("SE", event))
            for form_name in sorted(events[event], key=form_order.__getitem__):
                form = forms[form_name]
                form_data = _el(event_data, "FormData", FormOID=oid("F", form.name))
                for record in sorted(events[event][form_name], key=lambda r: r.repeat):
                    group = _el(form_data, "ItemGroupData", ItemGroupOID=oid("IG", form.name))
                    if form.repeating:
                        group.set("ItemGroupRepeatKey", str(record.repeat))
                    for item in form.items:
                        value = text_value(record.values.get(item.name))
                        if value is not None:
                            _el(group, "ItemData", ItemOID=_item_oid(form, item), Value=value)
        if progress is not None:
            progress(done, len(data.subjects))
