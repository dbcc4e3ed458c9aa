"""Work items for studies from a template, as dcm4chee's "create workitems for matching
studies" (UpsMatchingRS, UPSUtils.updateUPSTemplateAttrs): one SCHEDULED work item per
study, the template's attributes with the study as Input Information (its Study Instance
UID, the archive AE to retrieve it from), the study's patient, and now as Scheduled
Procedure Step Start DateTime (a template has none)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from pydicom import Dataset
from pydicom.sequence import Sequence as DicomSequence
from sqlalchemy import select

from core.db.models import Patient, Study, UPSState
from core.services import ups
from core.services.context import ServiceContext
from core.services.ups import UPSError, UPSRow, UPSSearch
from core.services.ups_items import dt

log = logging.getLogger(__name__)

# The patient's attributes a work item for a study carries (dcm4chee's setPatientAttrs).
PATIENT_KEYWORDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
)
# Of the template, not copied: what identifies it, and what the new work item's run adds.
NOT_COPIED = (
    "SOPClassUID",
    "SOPInstanceUID",
    "ScheduledProcedureStepModificationDateTime",
    "ProcedureStepProgressInformationSequence",
    "UnifiedProcedureStepPerformedProcedureSequence",
    "TransactionUID",
)
# Templates offered at most (newest first).
TEMPLATES = 200


def templates(ctx: ServiceContext) -> list[UPSRow]:
    """The work item templates (no start date/time), newest first."""
    return ups.search(ctx, UPSSearch(templates=True), limit=TEMPLATES).rows


def _patients(ctx: ServiceContext, study_uids: list[str]) -> dict[str, Dataset]:
    """The patient attributes of each study."""
    out: dict[str, Dataset] = {}
    with ctx.db.read() as session:
        for start in range(0, len(study_uids), 500):
            rows = session.execute(
                select(Study.study_iuid, Patient.attrs)
                .join(Patient, Study.patient_fk == Patient.pk)
                .where(Study.study_iuid.in_(study_uids[start : start + 500]))
            )
            for study_uid, attrs in rows:
                full = Dataset.from_json(attrs) if attrs and attrs != "{}" else Dataset()
                patient = Dataset()
                for keyword in PATIENT_KEYWORDS:
                    if keyword in full:
                        patient[keyword] = full[keyword]
                out[study_uid] = patient
    return out


def work_item_for(
    template: Dataset, study_uid: str, patient: Dataset, retrieve_aet: str
) -> Dataset:
    """The work item of one study from `template`'s attributes."""
    ds = Dataset()
    for elem in template:
        if elem.keyword not in NOT_COPIED and elem.keyword not in PATIENT_KEYWORDS:
            ds.add(elem)
    ds.update(patient)
    ds.ProcedureStepState = UPSState.SCHEDULED
    ds.ScheduledProcedureStepStartDateTime = dt(datetime.now())
    ds.StudyInstanceUID = study_uid
    item = Dataset()
    item.StudyInstanceUID = study_uid
    item.SeriesInstanceUID = None
    item.TypeOfInstances = "DICOM"
    retrieval = Dataset()
    retrieval.RetrieveAETitle = retrieve_aet
    item.DICOMRetrievalSequence = DicomSequence([retrieval])
    item.ReferencedSOPSequence = DicomSequence([])
    ds.InputInformationSequence = DicomSequence([item])
    return ds


def create_for_studies(
    ctx: ServiceContext, template_iuid: str, study_uids: Iterable[str], *, retrieve_aet: str = ""
) -> int:
    """Create one work item per study from the template `template_iuid`, the studies to
    be retrieved from `retrieve_aet` (default: the first archive AE); returns how many
    were created. Raises UPSError when the template is gone, ValueError when it is no
    template (it has a start date/time); a study
    whose work item is refused is logged and left out of the count (dcm4chee)."""
    item = ups.get(ctx, template_iuid)
    if not item.row.template:
        raise ValueError(f"Work item {template_iuid} is no template (it has a start date/time)")
    uids = list(dict.fromkeys(study_uids))
    patients = _patients(ctx, uids)
    aet = retrieve_aet or ctx.config.ae[0].title
    created = 0
    for study_uid in uids:
        ds = work_item_for(item.attributes, study_uid, patients.get(study_uid, Dataset()), aet)
        try:
            ups.create(ctx, ds)
        except UPSError as exc:
            log.info(
                "no work item for study %s from template %s: %s", study_uid, template_iuid, exc
            )
            continue
        created += 1
    return created
