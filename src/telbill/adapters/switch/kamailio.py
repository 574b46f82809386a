"""Kamailio's JSON-RPC (modules xhttp + jsonrpcs, at ``http://<RPC_LISTEN>/RPC``): end a
running call by its Call-ID.

`end_call` finds the call's dialogs (``dlg.list_match callid eq <id>``) and ends each
(``dlg.end_dlg <h_entry> <h_id>``: Kamailio sends BYE to both legs). Transport failures raise
`SwitchUnreachable` (try again later); a call Kamailio no longer knows is not an error.
"""

from __future__ import annotations

from typing import Any

import httpx

from telbill.errors import TelbillError

NOT_FOUND = 404


class SwitchUnreachable(TelbillError):
    """The switch did not answer its RPC (down, refused, timed out, or not JSON-RPC)."""

    code = "switch_unreachable"
    status = 502


class KamailioRpcError(TelbillError):
    """Kamailio answered a JSON-RPC error."""

    code = "switch_rpc_error"
    status = 502

    def __init__(self, rpc_code: int, message: str) -> None:
        super().__init__(f"Kamailio RPC error {rpc_code}: {message}")
        self.rpc_code = rpc_code


class KamailioRpc:
    """A JSON-RPC 2.0 client for one Kamailio (its ``/RPC`` URL)."""

    def __init__(self, url: str, *, timeout_s: float = 2.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._ids = 0

    def call(self, method: str, *params: Any) -> Any:
        self._ids += 1
        request = {"jsonrpc": "2.0", "method": method, "params": list(params), "id": self._ids}
        try:
            response = httpx.post(self.url, json=request, timeout=self.timeout_s)
            answer = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise SwitchUnreachable(f"{self.url}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(answer, dict):
            raise SwitchUnreachable(f"{self.url}: not a JSON-RPC answer")
        error = answer.get("error")
        if error is not None:
            raise KamailioRpcError(int(error.get("code", 0)), str(error.get("message", "")))
        return answer.get("result")

    def dialogs_of(self, call_id: str) -> list[tuple[int, int]]:
        """(h_entry, h_id) of every dialog of `call_id` Kamailio holds."""
        try:
            found = self.call("dlg.list_match", "callid", "eq", call_id)
        except KamailioRpcError as exc:
            if exc.rpc_code == NOT_FOUND:
                return []
            raise
        items = found if isinstance(found, list) else [found]
        return [
            (int(item["h_entry"]), int(item["h_id"]))
            for item in items
            if isinstance(item, dict) and "h_entry" in item and "h_id" in item
        ]

    def end_call(self, call_id: str) -> int:
        """Send BYE to both legs of every dialog of `call_id`; returns how many were ended."""
        ended = 0
        for h_entry, h_id in self.dialogs_of(call_id):
            try:
                self.call("dlg.end_dlg", h_entry, h_id)
            except KamailioRpcError as exc:
                if exc.rpc_code != NOT_FOUND:  # ended meanwhile: nothing left to do
                    raise
                continue
            ended += 1
        return ended


__all__ = ["KamailioRpc", "KamailioRpcError", "SwitchUnreachable"]
