"""A DIMSE request as the SCP handlers see it, and the handler's signature."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from core.config import AEConfig
from core.dimse import messages
from core.dimse.association import AcceptedContext, Association
from core.events import AssociationInfo
from core.services.context import ServiceContext


@dataclass
class Request:
    """A DIMSE request as handlers see it."""

    assoc: Association
    ae: AEConfig
    ctx: AcceptedContext
    command: messages.Command
    services: ServiceContext
    info: AssociationInfo

    @property
    def relational(self) -> bool:
        """Relational queries/retrieval were negotiated for this context's SOP class."""
        return self.assoc.extended.get(self.ctx.abstract_syntax, b"")[:1] == b"\x01"


# A handler sends its responses and returns its final status.
Handler = Callable[[Request], int]
