"""ADT messages -> patients, as dcm4chee's PatientUpdateService with its default template
(hl7-adt2dcm.xsl) and default policies.

PID-3 (first repetition) gives Patient ID (CX.1) and issuer (CX.4, its namespace ID),
PID-5 the name (XPN family^given^middle^suffix^prefix^degree -> DICOM
family^given^middle^prefix^suffix), PID-7 the birth date (first 8 characters), PID-8 the
sex (F, M, O; A and N -> O; anything else removes it). A field that is absent leaves the
patient's value; `""` (HL7 null) removes it.

ADT^A01, A04, A08 and the other patient-record events dcm4chee accepts create the patient
when no patient has the ID, else update it. ADT^A40 merges the patient of MRG-1 into the
patient of PID-3 (either created when unknown, as dcm4chee does); ADT^A47 changes a
patient's ID from MRG-1 to PID-3. A merged patient named by a message is refused (204,
dcm4chee's default "REJECT" policy for referred merged patients).
"""

from __future__ import annotations

import dataclasses

import hl7

from core.hl7.ack import (
    APPLICATION_INTERNAL_ERROR,
    DATA_TYPE_ERROR,
    DUPLICATE_KEY_IDENTIFIER,
    REQUIRED_FIELD_MISSING,
    UNKNOWN_KEY_IDENTIFIER,
    HL7Error,
)
from core.hl7.fields import NULL, hl7_date, value
from core.services import patients
from core.services.context import ServiceContext, Target, writing
from core.services.patients import Demographics, PatientError, PatientRow

PATIENT_IDENTIFIER = "PID^1^3"
PRIOR_PATIENT_IDENTIFIER = "MRG^1^1"

# The patient-record events dcm4chee's PatientUpdateService takes (besides A40 and A47).
UPDATE_EVENTS = (
    "A01",
    "A02",
    "A03",
    "A04",
    "A05",
    "A06",
    "A07",
    "A08",
    "A10",
    "A11",
    "A12",
    "A13",
    "A28",
    "A31",
    "A38",
)

_SEX = {"F": "F", "M": "M", "O": "O", "A": "O", "N": "O"}


@dataclasses.dataclass(frozen=True)
class PatientValues:
    """A patient as a message gives it: its ID and issuer, and the demographics the
    message sets ("" for a field it leaves alone, NULL for one it removes)."""

    patient_id: str
    issuer: str
    fields: dict[str, str]

    def label(self) -> str:
        """The patient as messages name it."""
        return patients.label(self.patient_id, self.issuer)


def _name(message: hl7.Message, field: str) -> str:
    """DICOM PN of an XPN field: family^given^middle^prefix^suffix (suffix and degree
    joined by a space, as hl7-common.xsl); NULL when sent as null."""
    raw = value(message, f"{field}.R1.C1")
    if raw == NULL:
        return NULL
    parts = [value(message, f"{field}.R1.C{n}") for n in range(1, 7)]
    family, given, middle, suffix, prefix, degree = parts
    suffix = " ".join(p for p in (suffix, degree) if p)
    return "^".join([family, given, middle, prefix, suffix]).rstrip("^")


def _sex(message: hl7.Message) -> str:
    text = value(message, "PID.F8")
    if not text:
        return ""
    return _SEX.get(text.upper(), NULL)


def pid_values(message: hl7.Message) -> PatientValues:
    """The patient of the PID segment; a required-field error at PID^1^3 without an ID."""
    patient_id = value(message, "PID.F3.R1.C1")
    if not patient_id or patient_id == NULL:
        raise HL7Error(REQUIRED_FIELD_MISSING, PATIENT_IDENTIFIER, "Missing patient identifier")
    fields = {
        "name": _name(message, "PID.F5"),
        "birth_date": hl7_date(message, "PID.F7", "birth date"),
        "sex": _sex(message),
    }
    return PatientValues(patient_id, value(message, "PID.F3.R1.C4"), fields)


def mrg_values(message: hl7.Message) -> PatientValues:
    """The prior patient of the MRG segment; a required-field error at MRG^1^1 without."""
    patient_id = value(message, "MRG.F1.R1.C1")
    if not patient_id or patient_id == NULL:
        raise HL7Error(
            REQUIRED_FIELD_MISSING, PRIOR_PATIENT_IDENTIFIER, "Missing prior patient identifier"
        )
    fields = {"name": _name(message, "MRG.F7")}
    return PatientValues(patient_id, value(message, "MRG.F1.R1.C4"), fields)


def _find(target: Target, patient: PatientValues, where: str) -> PatientRow | None:
    """The patient the message names (merged or not); a duplicate-key error when its ID
    names several patients."""
    try:
        return patients.lookup(target, patient.patient_id, patient.issuer)
    except PatientError as exc:
        raise HL7Error(DUPLICATE_KEY_IDENTIFIER, where, str(exc)) from None


def _not_merged(found: PatientRow | None, where: str) -> PatientRow | None:
    if found is not None and found.merged_into is not None:
        raise HL7Error(
            UNKNOWN_KEY_IDENTIFIER,
            where,
            f"{patients.label(found.patient_id, found.issuer, found.name)} "
            f"merged with {found.merged_into}",
        )
    return found


def _demographics(patient: PatientValues, base: Demographics) -> Demographics:
    """`base` with the fields the message sets (removed when sent as null)."""
    given = {k: ("" if v == NULL else v) for k, v in patient.fields.items() if v}
    return dataclasses.replace(base, patient_id=patient.patient_id, issuer=patient.issuer, **given)


def _create(target: Target, patient: PatientValues) -> int:
    return patients.create(target, _demographics(patient, Demographics()))


def _update(target: Target, pk: int, patient: PatientValues) -> None:
    current = patients.demographics(target, pk)
    # The ID as stored stays (an issuer the message leaves out does not remove it).
    values = dataclasses.replace(patient, issuer=patient.issuer or current.issuer)
    patients.edit(target, pk, _demographics(values, current))


# The PID field of each patient attribute, for a value the patient service refuses.
_PID_FIELDS = {
    "name": "PID^1^5",
    "patient_id": PATIENT_IDENTIFIER,
    "issuer": "PID^1^3^1^4",
    "birth_date": "PID^1^7",
    "sex": "PID^1^8",
}


def _refused(exc: PatientError, where: str) -> HL7Error:
    """The error ACK of a change the patient service refused: an ID another patient has
    (205 at `where`), a value it does not take (102 at its PID field; the service names
    the field first), anything else (207)."""
    reason = str(exc)
    if "already used" in reason:
        return HL7Error(DUPLICATE_KEY_IDENTIFIER, where, reason)
    for name, field in _PID_FIELDS.items():
        if reason.startswith(patients.FIELDS[name].label + " "):
            return HL7Error(DATA_TYPE_ERROR, field, reason)
    return HL7Error(APPLICATION_INTERNAL_ERROR, "", reason)


def update_patient(target: Target, message: hl7.Message) -> int:
    """Create or update the patient of PID (ADT^A01, A04, A08...; also the patient of an
    order, in the order's transaction); its primary key."""
    patient = pid_values(message)
    with writing(target) as session:
        found = _not_merged(_find(session, patient, PATIENT_IDENTIFIER), PATIENT_IDENTIFIER)
        try:
            if found is None:
                return _create(session, patient)
            _update(session, found.pk, patient)
        except PatientError as exc:
            raise _refused(exc, PATIENT_IDENTIFIER) from None
        return found.pk


def merge_patients(services: ServiceContext, message: hl7.Message) -> int:
    """ADT^A40: the patient of MRG-1 is merged into the patient of PID-3, as dcm4chee's
    PatientService.mergePatient: the target is created or updated, the prior patient
    created (and merged at once) when unknown; all in one transaction. Its primary key."""
    patient = pid_values(message)
    prior = mrg_values(message)
    with writing(services) as session:
        # dcm4chee names the prior patient's field for any merged patient in a merge.
        target = _not_merged(_find(session, patient, PATIENT_IDENTIFIER), PRIOR_PATIENT_IDENTIFIER)
        source = _not_merged(
            _find(session, prior, PRIOR_PATIENT_IDENTIFIER), PRIOR_PATIENT_IDENTIFIER
        )
        try:
            if target is None:
                target_pk = _create(session, patient)
            else:
                target_pk = target.pk
                _update(session, target_pk, patient)
                if source is not None and source.pk == target_pk:
                    return target_pk
            source_pk = source.pk if source is not None else _create(session, prior)
            patients.merge(session, source_pk, target_pk)
        except PatientError as exc:
            raise _refused(exc, PRIOR_PATIENT_IDENTIFIER) from None
        return target_pk


def change_patient_id(services: ServiceContext, message: hl7.Message) -> int:
    """ADT^A47: the patient of MRG-1 gets the ID of PID-3 (created when unknown, as
    dcm4chee); refused when another patient has that ID. Its primary key."""
    patient = pid_values(message)
    prior = mrg_values(message)
    with writing(services) as session:
        found = _not_merged(
            _find(session, prior, PRIOR_PATIENT_IDENTIFIER), PRIOR_PATIENT_IDENTIFIER
        )
        other = _find(session, patient, PATIENT_IDENTIFIER)
        if other is not None and (found is None or other.pk != found.pk):
            raise HL7Error(
                DUPLICATE_KEY_IDENTIFIER,
                PATIENT_IDENTIFIER,
                f"Patient with Patient ID {patient.label()} already exists",
            )
        try:
            if found is None:
                return _create(session, patient)
            current = patients.demographics(session, found.pk)
            patients.edit(session, found.pk, _demographics(patient, current))
        except PatientError as exc:
            raise _refused(exc, PATIENT_IDENTIFIER) from None
        return found.pk
