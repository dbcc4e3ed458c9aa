"""STOW-RS client (PS3.18 10.5): Part 10 objects POSTed to `{web app url}/studies` as
`multipart/related; type="application/dicom"`, a chunk of objects per request.

The body is written by a small generator (`multipart_related`): httpx encodes only
multipart/form-data, and so do requests-toolbelt and urllib3; the standard library's email
package builds the whole message in memory and re-encodes binary parts. Each part's length
is known beforehand, so the request carries a Content-Length (servers that do not take
chunked transfer encoding accept it) while files are read as the body is sent.

The response (DICOM JSON) tells which objects failed: 200 all stored; 202 some failed or
were stored with warnings; 409 none or some stored. Its Failed SOP Sequence (0008,1198)
names the failed objects with their Failure Reason (0008,1197); Referenced SOP Sequence
(0008,1199) items with a Warning Reason (0008,1196) stored with a warning. Any other status,
or no answer at all, fails the whole request: StowError, with the status and a short reason.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import httpx

from core.config import WebAppConfig, WebAuth

FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
REFERENCED_SOP_INSTANCE_UID = "00081155"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
# Requests stay small enough to retry cheaply and for servers' body limits.
MAX_INSTANCES = 50
MAX_BYTES = 32 << 20
_BLOCK = 1 << 20
# Longest body of an error response quoted in a reason.
_REASON_CHARS = 120


class StowError(Exception):
    """A STOW-RS request failed as a whole; the message is one line (status and reason).
    `status` is the HTTP status, or None when there was no answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Part:
    """One object to send: its SOP Instance UID, the length of its Part 10 bytes and a
    callable giving those bytes in blocks (read while the request is sent)."""

    sop_instance_uid: str
    length: int
    blocks: Callable[[], Iterable[bytes]]


@dataclass
class StowResponse:
    """What the server said of one request: failed and warned objects, by SOP Instance
    UID, with the reason; every other object sent was stored."""

    status: int
    failed: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)


def file_blocks(path: str) -> Iterator[bytes]:
    """The bytes of the file at `path`, in blocks."""
    with open(path, "rb") as file:
        while block := file.read(_BLOCK):
            yield block


def _head(boundary: str) -> bytes:
    return f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode("ascii")


def _tail(boundary: str) -> bytes:
    return f"--{boundary}--\r\n".encode("ascii")


def body_length(parts: Sequence[Part], boundary: str) -> int:
    """The length of `multipart_related(parts, boundary)`."""
    each = len(_head(boundary)) + len(b"\r\n")
    return sum(p.length + each for p in parts) + len(_tail(boundary))


def multipart_related(parts: Sequence[Part], boundary: str) -> Iterator[bytes]:
    """The multipart/related body: each part with its Content-Type, then the closing
    delimiter. A part whose bytes differ in length from what it announced ends the body
    with an error (the Content-Length sent would be wrong)."""
    for part in parts:
        yield _head(boundary)
        sent = 0
        try:
            for block in part.blocks():
                sent += len(block)
                yield block
        except OSError as exc:
            raise StowError(
                f"{part.sop_instance_uid}: cannot read the stored file: {exc}"
            ) from None
        if sent != part.length:
            raise StowError(f"{part.sop_instance_uid}: {sent} bytes read, {part.length} expected")
        yield b"\r\n"
    yield _tail(boundary)


def _values(element: object) -> list:
    """The "Value" list of a DICOM JSON element (empty when absent or malformed)."""
    value = element.get("Value") if isinstance(element, dict) else None
    return value if isinstance(value, list) else []


def _reasons(document: dict, sequence: str, reason_tag: str) -> dict[str, str]:
    """SOP Instance UID -> reason, for the items of `sequence` that carry `reason_tag`
    (failed items without one are failed all the same)."""
    found = {}
    for item in _values(document.get(sequence)):
        if not isinstance(item, dict):
            continue
        uids = _values(item.get(REFERENCED_SOP_INSTANCE_UID))
        codes = _values(item.get(reason_tag))
        if not uids:
            continue
        if codes and isinstance(codes[0], int):
            label = "failure reason" if reason_tag == FAILURE_REASON else "warning reason"
            found[str(uids[0])] = f"{label} 0x{codes[0]:04X}"
        elif reason_tag == FAILURE_REASON:
            found[str(uids[0])] = "failed, no reason given"
    return found


def _document(response: httpx.Response) -> dict | None:
    """The response's DICOM JSON data set ({} for an empty body), None when unreadable."""
    if not response.content:
        return {}
    try:
        document = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if isinstance(document, list) and len(document) == 1:
        # Some servers wrap the response data set in a JSON array.
        document = document[0]
    return document if isinstance(document, dict) else None


def _short(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    reason = response.reason_phrase or "error"
    if text:
        reason += f": {text[:_REASON_CHARS]}{'...' if len(text) > _REASON_CHARS else ''}"
    return reason


class StowClient:
    """POSTs chunks of objects to one web app's STOW-RS service, with its authentication
    and TLS verification. Use as a context manager (it holds a connection pool)."""

    def __init__(self, app: WebAppConfig, timeout: httpx.Timeout | float = 60.0) -> None:
        self.app = app
        self.url = f"{app.url}/studies"
        auth: httpx.Auth | None = None
        headers = {"Accept": "application/dicom+json"}
        if app.auth == WebAuth.BASIC:
            auth = httpx.BasicAuth(app.username, app.password)
        elif app.auth == WebAuth.BEARER:
            headers["Authorization"] = f"Bearer {app.token}"
        self._client = httpx.Client(
            auth=auth, headers=headers, verify=app.tls_verify, timeout=timeout
        )

    def __enter__(self) -> StowClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def store(self, parts: Sequence[Part]) -> StowResponse:
        """One STOW-RS request with `parts`; raises StowError when it fails as a whole."""
        boundary = uuid.uuid4().hex
        headers = {
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Content-Length": str(body_length(parts, boundary)),
        }
        try:
            response = self._client.post(
                self.url, content=multipart_related(parts, boundary), headers=headers
            )
        except StowError:
            raise
        except httpx.HTTPError as exc:
            raise StowError(f"{self.app.name} ({self.url}): {exc or type(exc).__name__}") from None
        status = response.status_code
        if status not in (200, 202, 409):
            raise StowError(f"{self.app.name} answered HTTP {status} {_short(response)}", status)
        document = _document(response)
        if document is None:
            if status == 200:
                # Everything was stored; what the server adds cannot change that.
                return StowResponse(status)
            # Which objects failed cannot be told: none can be counted stored.
            reason = f"{self.app.name} answered HTTP {status} with unreadable DICOM JSON"
            return StowResponse(status, failed={p.sop_instance_uid: reason for p in parts})
        outcome = StowResponse(
            status,
            failed=_reasons(document, FAILED_SOP_SEQUENCE, FAILURE_REASON),
            warnings=_reasons(document, REFERENCED_SOP_SEQUENCE, WARNING_REASON),
        )
        if status == 409 and not outcome.failed:
            # A conflict that names no object: nothing in the request can be counted stored.
            reason = f"{self.app.name} answered HTTP 409 {_short(response)}"
            outcome.failed = {p.sop_instance_uid: reason for p in parts}
        return outcome
