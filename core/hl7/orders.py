"""ORM^O01 and OMI^O23 -> MWL items, as dcm4chee's ProcedureUpdateService with its default
template (hl7-order2dcm.xsl) and default settings.

The patient of PID is created or updated first (as an ADT would). The order control ORC-1
and order status ORC-5 give the SPS status (dcm4chee's default HL7 order SPS statuses):
NW_SC, NW_IP, XO_SC -> SCHEDULED; CA_CA -> CANCELED; DC_CA -> DISCONTINUED; XO_CM, SC_CM,
SC_A -> COMPLETED. Any other pair is refused (AE 101 at ORC^1^1^1^1).

The scheduled procedure steps: one per IPC segment (OMI^O23: IPC-1 accession number,
IPC-2 requested procedure ID, IPC-3 Study Instance UID, IPC-4 SPS ID, IPC-5 modality,
IPC-6 protocol code, IPC-7 station name, IPC-8 location, IPC-9 station AE titles);
otherwise one from OBR and ZDS (ORM^O01): OBR-18 accession number, OBR-19 requested
procedure ID, OBR-20 SPS ID, OBR-24 modality, OBR-4 the procedure code (components 4-6
the scheduled protocol code, dcm4chee's OBR_4_4 default; components 1-3 the requested
procedure code when OBR-44 gives none), OBR-34 the scheduled performing technician, ZDS-1
the Study Instance UID. SPS start date/time: TQ1-7, else ORC-7.4, else OBR-27.4 (now
when none). ORC-2/ORC-3 placer/filler order numbers, ORC-7.6 (TQ1-9) the priority.

Missing IDs as dcm4chee's ProcedureUpdateService: no Study Instance UID but a requested
procedure ID -> a name-based UID of it (the same order always gets the same study); no
SPS ID -> the requested procedure ID; else generated (`A-%08d`, `RP-%08d`, `SPS-%08d`, a
new UID) by the worklist.

Where this differs from dcm4chee's defaults: an ORM^O01 without ZDS still schedules its step
(dcm4chee's template makes none and answers AA: the order would be lost); NW, CA and DC
without an order status (ORC-5 empty) are taken as NW_SC, CA_CA and DC_CA (dcm4chee
refuses them); a missing requested procedure ID is generated, not derived from the Study
Instance UID (a UID does not fit the 16 characters of an SH); the requested procedure code
falls back to OBR-4.1-3 when OBR-44 gives none.

The items of the order's study are then brought in line with the message, as dcm4chee
does for HL7: a step of the message that exists (same Study Instance UID and SPS ID) is
updated with what the message gives, a new one is created, and the study's steps that the
message no longer lists are deleted. All in one transaction, the patient's creation or
update included: a refused order changes nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import hl7
from sqlalchemy.orm import Session

from core.config import SPSStatus
from core.dicom.uids import is_uid, name_based_uid
from core.hl7 import adt
from core.hl7.ack import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    HL7Error,
)
from core.hl7.fields import (
    NULL,
    has_segment,
    hl7_datetime,
    location,
    message_type,
    repeats,
    value,
)
from core.services import patients, worklist
from core.services.context import ServiceContext
from core.services.worklist import ItemForm, MWLRow, WorklistError

GENERAL_ORDER = "ORM^O01"
IMAGING_ORDER = "OMI^O23"
ORDER_CONTROL = "ORC^1^1^1^1"

# ORC-1 "_" ORC-5 -> SPS status (dcm4chee's ArchiveDeviceFactory HL7_ORDER_SPS_STATUSES).
ORDER_STATUSES = {
    "NW_SC": SPSStatus.SCHEDULED,
    "NW_IP": SPSStatus.SCHEDULED,
    "XO_SC": SPSStatus.SCHEDULED,
    "CA_CA": SPSStatus.CANCELED,
    "DC_CA": SPSStatus.DISCONTINUED,
    "XO_CM": SPSStatus.COMPLETED,
    "SC_CM": SPSStatus.COMPLETED,
    "SC_A": SPSStatus.COMPLETED,
}
# An order control whose meaning is plain without an order status (ORC-5 left empty,
# as many RIS send them); dcm4chee's default configuration refuses these.
_WITHOUT_ORDER_STATUS = {
    "NW": SPSStatus.SCHEDULED,
    "CA": SPSStatus.CANCELED,
    "DC": SPSStatus.DISCONTINUED,
}

# ORC-7.6 / TQ1-9 priority -> Requested Procedure Priority (hl7-order2dcm.xsl).
_PRIORITIES = {"S": "STAT", "A": "HIGH", "P": "HIGH", "C": "HIGH", "R": "ROUTINE", "T": "MEDIUM"}

_PLACER_ORDER = "00402016"
_FILLER_ORDER = "00402017"
_PRIORITY = "00401003"
_REQUESTED_PROCEDURE_CODE = "00321064"
_PROTOCOL_CODE = "00400008"
_STATION_NAME = "00400010"
_STEP_LOCATION = "00400011"


def _value(message: hl7.Message, path: str) -> str:
    """The value at `path`; HL7's null (`""`) as nothing: an order's update keeps what
    it leaves out."""
    found = value(message, path)
    return "" if found == NULL else found


def _text(vr: str, text: str) -> dict[str, Any]:
    return {"vr": vr, "Value": [text]}


def _code_item(code: str, meaning: str, scheme: str) -> dict[str, Any] | None:
    """A code sequence item, when code, scheme and meaning are all given (codeItem)."""
    if not (code and meaning and scheme):
        return None
    return {
        "00080100": _text("SH", code[:16]),
        "00080102": _text("SH", scheme[:16]),
        "00080104": _text("LO", meaning[:64]),
    }


def _coded(message: hl7.Message, path: str, first: int) -> tuple[str, dict[str, Any] | None]:
    """(description, code item) of the coded entry at `path`, from its components
    `first`..`first`+2 (code, text, coding scheme): the text, or the code when there is
    none, as the description."""
    code, meaning, scheme = (_value(message, f"{path}.R1.C{first + n}") for n in range(3))
    return (meaning or code)[:64], _code_item(code, meaning, scheme)


def order_status(message: hl7.Message) -> SPSStatus:
    """The SPS status ORC-1 and ORC-5 ask for; AE 101 at ORC-1 for any other pair."""
    control, status = _value(message, "ORC.F1"), _value(message, "ORC.F5")
    found = ORDER_STATUSES.get(f"{control}_{status}")
    if found is None and not status:
        found = _WITHOUT_ORDER_STATUS.get(control)
    if found is None:
        raise HL7Error(
            REQUIRED_FIELD_MISSING,
            ORDER_CONTROL,
            "Invalid order control in field 1 and/or invalid order status in field 5",
        )
    return found


def _start(message: hl7.Message, kind: str) -> datetime:
    """The SPS start: TQ1-7, else ORC-7.4, else OBR-27.4; now when none gives it. A value
    that is no timestamp is a data type error at ORC-7.4 (ORM) or TQ1-7 (OMI), as dcm4chee
    names them."""
    where = "ORC^1^7^1^4" if kind == GENERAL_ORDER else "TQ1^1^7^1^1"
    for path in ("TQ1.F7", "ORC.F7.R1.C4", "OBR.F27.R1.C4"):
        try:
            found = hl7_datetime(message, path, "scheduled procedure step start date/time")
        except HL7Error:
            raise HL7Error(
                DATA_TYPE_ERROR,
                where,
                "Invalid scheduled procedure step start date and/or time",
            ) from None
        if found is not None:
            return found
    return datetime.now()


def _order_attributes(message: hl7.Message) -> dict[str, Any]:
    """What every item of the order carries besides the form's fields: placer and filler
    order numbers, priority, requested procedure code."""
    extra: dict[str, Any] = {}
    for path, tag in (("ORC.F2", _PLACER_ORDER), ("ORC.F3", _FILLER_ORDER)):
        number = _value(message, path)
        if number:
            extra[tag] = _text("LO", number[:64])
    priority = _value(message, "TQ1.F9") or _value(message, "ORC.F7.R1.C6")
    if priority in _PRIORITIES:
        extra[_PRIORITY] = _text("SH", _PRIORITIES[priority])
    _, code = _coded(message, "OBR.F44", 1)
    if code is None:
        _, code = _coded(message, "OBR.F4", 1)
    if code is not None:
        extra[_REQUESTED_PROCEDURE_CODE] = {"vr": "SQ", "Value": [code]}
    return extra


def _requested_procedure_description(message: hl7.Message) -> str:
    description, _ = _coded(message, "OBR.F44", 1)
    return description or _coded(message, "OBR.F4", 1)[0]


def _performing_physician(message: hl7.Message) -> str:
    """OBR-34 (technician, CNN in its first component): family&given&middle&suffix&prefix
    as subcomponents 2-6 -> DICOM family^given^middle^prefix^suffix."""
    parts = [_value(message, f"OBR.F34.R1.C1.S{n}") for n in range(2, 7)]
    family, given, middle, suffix, prefix = parts
    return "^".join([family, given, middle, prefix, suffix]).rstrip("^")


def _steps_from_obr(message: hl7.Message) -> list[tuple[ItemForm, str]]:
    """The one step of an order without IPC: OBR and ZDS. With the location of its Study
    Instance UID (for errors)."""
    if not has_segment(message, "OBR"):
        raise HL7Error(SEGMENT_SEQUENCE_ERROR, "OBR^1", "Missing OBR segment")
    protocol, protocol_code = _coded(message, "OBR.F4", 4)
    if not protocol:
        protocol, protocol_code = _coded(message, "OBR.F4", 1)
    sps_extra = {_PROTOCOL_CODE: {"vr": "SQ", "Value": [protocol_code]}} if protocol_code else {}
    form = ItemForm(
        accession_number=_value(message, "OBR.F18"),
        requested_procedure_id=_value(message, "OBR.F19"),
        requested_procedure_description=_requested_procedure_description(message),
        study_iuid=_value(message, "ZDS.F1"),
        sps_id=_value(message, "OBR.F20"),
        modality=_value(message, "OBR.F24"),
        performing_physician=_performing_physician(message),
        sps_description=protocol,
        sps_extra=sps_extra,
    )
    return [(form, "ZDS^1^1^1^1")]


def _steps_from_ipc(message: hl7.Message) -> list[tuple[ItemForm, str]]:
    """One step per IPC segment (OMI^O23)."""
    steps = []
    for n in range(1, len(message.segments("IPC")) + 1):
        ipc = f"IPC{n}"
        protocol, protocol_code = _coded(message, f"{ipc}.F6", 1)
        sps_extra: dict[str, Any] = {}
        if protocol_code:
            sps_extra[_PROTOCOL_CODE] = {"vr": "SQ", "Value": [protocol_code]}
        names = repeats(message, f"{ipc}.F7")
        if names:
            sps_extra[_STATION_NAME] = {"vr": "SH", "Value": [name[:16] for name in names]}
        where = _value(message, f"{ipc}.F8")
        if where:
            sps_extra[_STEP_LOCATION] = _text("SH", where[:16])
        form = ItemForm(
            accession_number=_value(message, f"{ipc}.F1"),
            requested_procedure_id=_value(message, f"{ipc}.F2"),
            requested_procedure_description=_requested_procedure_description(message),
            study_iuid=_value(message, f"{ipc}.F3"),
            sps_id=_value(message, f"{ipc}.F4"),
            modality=_value(message, f"{ipc}.F5"),
            station_aets="\\".join(repeats(message, f"{ipc}.F9")),
            performing_physician=_performing_physician(message),
            sps_description=protocol,
            sps_extra=sps_extra,
        )
        steps.append((form, location(f"{ipc}.F3")))
    return steps


def _identified(form: ItemForm, where: str) -> ItemForm:
    """The IDs dcm4chee derives when the order leaves them out (the rest are generated
    by the worklist); a Study Instance UID that is no UID is a data type error."""
    study, procedure, step = form.study_iuid, form.requested_procedure_id, form.sps_id
    if study and not is_uid(study):
        raise HL7Error(DATA_TYPE_ERROR, where, f"Invalid Study Instance UID: {study}")
    if not study and procedure:
        study = name_based_uid(procedure.encode())
    if not step and procedure:
        step = procedure
    return dataclasses.replace(form, study_iuid=study, sps_id=step)


def _overlay(current: ItemForm, received: ItemForm) -> ItemForm:
    """The stored item with what the message gives (dcm4chee's OVERWRITE update: an
    attribute the message leaves out stays)."""
    given = {
        f.name: getattr(received, f.name)
        for f in dataclasses.fields(received)
        if f.name not in ("extra", "sps_extra") and getattr(received, f.name)
    }
    return dataclasses.replace(
        current,
        **given,
        extra={**current.extra, **received.extra},
        sps_extra={**current.sps_extra, **received.sps_extra},
    )


def order(services: ServiceContext, message: hl7.Message) -> None:
    """Apply an ORM^O01 or OMI^O23 order to the worklist (see the module's docstring)."""
    kind = message_type(message)
    patient = adt.pid_values(message)
    status = order_status(message)
    start = _start(message, kind)
    steps = _steps_from_ipc(message) if has_segment(message, "IPC") else []
    steps = steps or _steps_from_obr(message)
    extra = _order_attributes(message)
    forms = [
        dataclasses.replace(
            _identified(form, where),
            patient_id=patient.patient_id,
            issuer=patient.issuer,
            sps_status=status.value,
            sps_start_date=start.strftime("%Y%m%d"),
            sps_start_time=start.strftime("%H%M%S"),
            extra=extra,
        )
        for form, where in steps
    ]
    try:
        with services.db.write() as session:
            patient_pk = adt.update_patient(session, message)
            existing = _kept_steps(session, forms, patient_pk)
            for form in forms:
                found = existing.get((form.study_iuid, form.sps_id))
                if found is None:
                    worklist.create_item(session, form)
                else:
                    current = worklist.form_of(session, found.pk)
                    worklist.update_item(session, found.pk, _overlay(current, form))
    except WorklistError as exc:
        raise _refused(exc, has_segment(message, "IPC")) from None


# The order's field of each item field, for a value the worklist does not take.
_OBR_FIELDS = {
    "accession_number": "OBR^1^18",
    "requested_procedure_id": "OBR^1^19",
    "sps_id": "OBR^1^20",
    "modality": "OBR^1^24",
    "requested_procedure_description": "OBR^1^4",
    "sps_description": "OBR^1^4",
    "performing_physician": "OBR^1^34",
}
_IPC_FIELDS = {
    **_OBR_FIELDS,
    "accession_number": "IPC^1^1",
    "requested_procedure_id": "IPC^1^2",
    "sps_id": "IPC^1^4",
    "modality": "IPC^1^5",
    "sps_description": "IPC^1^6",
    "station_aets": "IPC^1^9",
}


def _refused(exc: WorklistError, imaging: bool) -> HL7Error:
    """The error ACK of an item the worklist refused: a value it does not take is a data
    type error at its field of the order (the worklist names the field first); anything
    else an application error."""
    reason = str(exc)
    fields = {**worklist.ITEM_FIELDS, **worklist.SPS_FIELDS}
    for name, where in (_IPC_FIELDS if imaging else _OBR_FIELDS).items():
        if reason.startswith(fields[name].label + " "):
            return HL7Error(DATA_TYPE_ERROR, where, reason)
    return HL7Error(APPLICATION_INTERNAL_ERROR, "", reason)


def _kept_steps(
    session: Session, forms: list[ItemForm], patient_pk: int
) -> dict[tuple[str, str], MWLRow]:
    """The stored steps of the order's studies that the message lists again, by (Study
    Instance UID, SPS ID); the others are deleted. An order whose study is scheduled for
    another patient is refused (dcm4chee's PatientMismatchException)."""
    listed: dict[str, set[str]] = {}
    for form in forms:
        if form.study_iuid:
            listed.setdefault(form.study_iuid, set()).add(form.sps_id)
    kept = {}
    for study, steps in listed.items():
        existing = worklist.find_by_study(session, study)
        for row in existing:
            if row.patient_pk != patient_pk:
                raise HL7Error(
                    APPLICATION_INTERNAL_ERROR,
                    "",
                    f"{patients.label(row.patient_id, row.issuer)} of the MWL item of study "
                    f"{study} does not match the patient of the order",
                )
        gone = [row.pk for row in existing if row.sps_id not in steps]
        if gone:
            worklist.delete_items(session, gone)
        kept.update({(study, row.sps_id): row for row in existing if row.sps_id in steps})
    return kept
