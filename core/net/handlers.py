"""The DIMSE services the listener dispatches to, by command field."""

from __future__ import annotations

from core.dimse import messages
from core.net.echo_scp import handle_echo
from core.net.find_scp import handle_find
from core.net.get_scp import handle_get
from core.net.move_scp import handle_move
from core.net.request import Handler
from core.net.store_scp import handle_store

HANDLERS: dict[int, Handler] = {
    messages.C_ECHO_RQ: handle_echo,
    messages.C_STORE_RQ: handle_store,
    messages.C_FIND_RQ: handle_find,
    messages.C_MOVE_RQ: handle_move,
    messages.C_GET_RQ: handle_get,
}
